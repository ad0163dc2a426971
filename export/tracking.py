"""MLflow set-up shared by the training pipelines: one local store by default, so battery and
compliance runs sit side by side in one UI (`mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db`)."""

from __future__ import annotations

import os
from pathlib import Path


def use_experiment(uri: str | None, name: str) -> str:
    """Point MLflow at `uri` and select (create) the experiment `name`; returns the URI.
    Default: sqlite in ./mlruns with artifacts in ./mlruns/artifacts (MLflow 3 refuses the
    plain file store unless opted in; an explicit file: URI opts in)."""
    import mlflow
    if not uri:
        root = Path("mlruns").resolve()
        root.mkdir(exist_ok=True)
        uri = f"sqlite:///{root / 'mlflow.db'}"
    if uri.startswith("file:") or "://" not in uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(name) is None:
        art_root = Path(uri[len("sqlite:///"):]).parent / "artifacts" if uri.startswith("sqlite:///") else None
        mlflow.create_experiment(name, artifact_location=art_root.as_uri() if art_root else None)
    mlflow.set_experiment(name)
    return uri
