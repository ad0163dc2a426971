"""MLflow Model Registry for trained bundles: registry -> signed release (export.release).

A bundle is registered as a version of the registered model named after its slot
("trey-battery" / "trey-compliance"). The version's source is the bundle directory logged
in the training run (artifact path "bundle"), so the lineage to the run — params, metrics,
curves — is MLflow's own; the version carries the bundle's identity as tags: manifest name
and version, sha256 of the manifest (which pins every file), the held-out metrics and the
ONNX/int8 parity figures. `download_registered("trey-battery/3")` fetches it back and
verifies it (signature + hashes) before `trey-export release` signs it for the fleet.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from agent.bundle import verify_bundle

REGISTERED = {"battery": "trey-battery", "compliance": "trey-compliance"}


def _flat(prefix: str, d, out: dict) -> dict:
    if isinstance(d, dict):
        for k, v in d.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        out[prefix] = d
    return out


def register_bundle(bundle_dir, slot: str, run_id: str | None = None, tracking_uri: str | None = None) -> int:
    """Register a (verified) bundle directory; with run_id, the run must have logged it under
    artifact path "bundle" (the training pipelines do). Without, a registration run logs it.
    Returns the new model version number."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from export.tracking import use_experiment
    b = verify_bundle(bundle_dir)
    if tracking_uri is not None:          # else: the store the caller (a training run) set up
        use_experiment(tracking_uri, f"trey-{slot}")
    client = MlflowClient()
    if run_id is None:
        with mlflow.start_run(run_name=f"register-{b.version}") as run:
            mlflow.log_artifacts(str(bundle_dir), artifact_path="bundle")
            run_id = run.info.run_id
    name = REGISTERED[slot]
    try:
        client.get_registered_model(name)
    except Exception:          # not registered yet (MlflowException RESOURCE_DOES_NOT_EXIST)
        client.create_registered_model(name, description=f"trey-edge {slot} model bundles (agent.bundle format)")
    source = f"{client.get_run(run_id).info.artifact_uri}/bundle"
    m = b.manifest
    metrics = _flat("", m.get("metrics_heldout") or m.get("metrics") or {}, {})
    parity = _flat("", m.get("parity") or {}, {})
    tags = {"bundle.name": b.name, "bundle.version": b.version, "bundle.sha256": b.sha256, "slot": slot,
            "metrics": json.dumps(metrics, sort_keys=True)[:4500], "parity": json.dumps(parity, sort_keys=True)[:4500]}
    mv = client.create_model_version(name, source, run_id=run_id, tags=tags,
                                     description=f"{b.name}@{b.version}")
    return int(mv.version)


def resolve(ref: str) -> tuple[str, str]:
    name, _, version = ref.partition("/")
    if not name or not version:
        raise ValueError(f"--registered expects NAME/VERSION, got {ref!r}")
    return name, version


def download_registered(ref: str, tracking_uri: str | None = None) -> Path:
    """NAME/VERSION -> a local, verified bundle directory."""
    import mlflow
    from mlflow.tracking import MlflowClient
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    else:                                 # the training pipelines' default local store
        from export.tracking import use_experiment
        use_experiment(None, "trey-registry")
    name, version = resolve(ref)
    mv = MlflowClient().get_model_version(name, version)
    dst = Path(tempfile.mkdtemp(prefix="trey-registered-"))
    path = Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(dst)))
    b = verify_bundle(path)
    if b.sha256 != (mv.tags or {}).get("bundle.sha256"):
        raise ValueError(f"{ref}: downloaded bundle {b.sha256[:12]} is not the registered {mv.tags.get('bundle.sha256')}")
    return path


__all__ = ["register_bundle", "download_registered", "REGISTERED"]
