"""Registry -> release: a trained bundle logged in an MLflow run is registered in the Model
Registry (sqlite store) with its identity, metrics and parity as tags and the run as lineage;
`trey-export release battery --registered trey-battery/1` fetches it, verifies it, signs the
release and a car (real agent.sync.Sync on a real mosquitto) installs exactly that bundle."""

from __future__ import annotations

import json

import pytest

from agent.alerts import Alerts
from agent.bundle import DEFAULT_BATTERY_BUNDLE, verify_bundle
from agent.sync import Sync
from export.cli import main as export_main
from tests.conftest import wait_until
from tests.sync_support import agent_cfg, open_store


def test_registered_bundle_released_to_a_car(tmp_path, broker, monkeypatch):
    mlflow = pytest.importorskip("mlflow", reason="mlflow is in the train extra")
    from mlflow.tracking import MlflowClient

    from export.registry import register_bundle
    from export.tracking import use_experiment
    monkeypatch.chdir(tmp_path)
    uri = use_experiment(f"sqlite:///{tmp_path / 'mlflow.db'}", "trey-battery")
    with mlflow.start_run(run_name="training") as run:        # what the pipeline's run does
        mlflow.log_metric("val_loss", 0.1)
        mlflow.log_artifacts(str(DEFAULT_BATTERY_BUNDLE), artifact_path="bundle")
    version = register_bundle(DEFAULT_BATTERY_BUNDLE, "battery", run.info.run_id)
    assert version == 1
    mv = MlflowClient().get_model_version("trey-battery", "1")
    shipped = verify_bundle(DEFAULT_BATTERY_BUNDLE)
    assert mv.run_id == run.info.run_id                        # lineage to the training run
    assert mv.tags["bundle.sha256"] == shipped.sha256 and mv.tags["bundle.version"] == shipped.version
    assert json.loads(mv.tags["metrics"]) and json.loads(mv.tags["parity"])

    installed = []
    store = open_store(tmp_path / "car")
    car = Sync(agent_cfg(tmp_path / "car", broker.host, broker.port, "CAR-REG"), store, Alerts(store),
               on_bundle=lambda slot, files, rel: installed.append((slot, files["manifest.json"], rel.version)) or True,
               backoff_min=0.05, backoff_max=0.3).start()
    try:
        wait_until(lambda: car.status()["connected"], 10, what="car connected")
        assert export_main(["release", "battery", "--registered", "trey-battery/1", "--tracking-uri", uri,
                            "--broker", f"{broker.host}:{broker.port}"]) == 0
        wait_until(lambda: installed, 20, what=f"registered bundle installed: {car.status()['models']}")
        slot, manifest, rel_version = installed[0]
        assert slot == "battery" and rel_version == 1
        assert manifest == (DEFAULT_BATTERY_BUNDLE / "manifest.json").read_bytes()
    finally:
        car.stop()
