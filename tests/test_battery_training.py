"""The battery pipeline end to end on a small generated fleet (one training run shared by
the tests, < 1 minute): beats naive on held-out batteries, ONNX parity, int8 alert
agreement, signed bundle loaded by the agent's forecaster, tampering refused, MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agent.bundle import BundleError, verify_bundle
from agent.forecast import BatteryForecaster


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from export.battery.pipeline import TrainConfig, run_training
    d = tmp_path_factory.mktemp("battery")
    (d / "mlruns").mkdir()
    cfg = TrainConfig(out=str(d / "bundle"), batteries=40, seed=11, artifacts=str(d / "art"), window=56,
                      train_stride=5, max_per_battery=120, max_epochs=4, patience=2, lstm_budget_s=12,
                      search_budget_s=6,
                      search_lstm_epochs=1, threads=2, mlflow_uri=f"sqlite:///{d / 'mlruns' / 'mlflow.db'}", progress=False)
    summary = run_training(cfg)
    return d, cfg, summary


def test_lstm_beats_naive_on_heldout_batteries(trained):
    _, _, s = trained
    m = s["metrics_heldout"]
    assert set(m) >= {"naive_28d_mean", "seasonal_naive_weekly", "ridge_lags", "lstm", "oracle", "exported_int8"}
    assert m["lstm"]["sum30_mae"] < m["naive_28d_mean"]["sum30_mae"]
    # the oracle (expected usage) is the ceiling
    assert m["oracle"]["sum30_mae"] < m["lstm"]["sum30_mae"]
    assert [e["rank"] for e in s["leaderboard"]] == list(range(1, len(s["leaderboard"]) + 1))
    assert {e["model"] for e in s["leaderboard"]} >= {"naive_28d_mean", "seasonal_naive_weekly", "ridge", "lstm"}


def test_onnx_parity_and_int8_alert_agreement(trained):
    _, _, s = trained
    for p in (s["parity"], s["parity_lstm"]):          # the exported winner and the LSTM
        assert p["n_windows"] > 1000
        assert p["fp32_vs_torch_max_abs_err"] <= 1e-4
        assert p["int8_vs_fp32_alert_agreement"] >= 0.99


def test_exported_model_is_the_best_finalist_on_validation(trained):
    _, cfg, s = trained
    sel = s["selection"]
    assert set(sel) >= {"lstm", "ridge"}
    assert s["winner"] == min(sel, key=lambda k: sel[k]["sum30_mae"])
    assert verify_bundle(cfg.out).manifest["model_kind"] == s["winner"]


def test_bundle_verifies_and_forecaster_runs_it(trained):
    d, cfg, s = trained
    b = verify_bundle(cfg.out)
    assert b.manifest["parity"] == pytest.approx(s["parity"])
    assert b.manifest["preprocessing"]["window"] == 56
    assert b.manifest["preprocessing"]["features"][0] == "cycles_rel"
    # the agent's path (cleaning + features + ORT int8) reproduces the pipeline's int8 forecast
    import csv
    with open(d / "art" / "fleet" / "battery_history.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh)]
    bid = rows[-1]["Battery_ID"]
    fc = BatteryForecaster.from_bundle(b)
    ans = fc.forecast([r for r in rows if r["Battery_ID"] == bid])
    assert ans["battery_id"] == bid and ans["fallback"] is None
    assert len(ans["forecast_daily_cycles"]) == 30 and min(ans["forecast_daily_cycles"]) >= 0
    assert ans["projected_lifetime_cycles_30d"] == pytest.approx(
        ans["lifetime_cycles"] + sum(ans["forecast_daily_cycles"]), abs=1e-3)
    assert ans["alert"] == (ans["projected_lifetime_cycles_30d"] >= ans["rated_cycles"])
    assert (d / "art" / "feature_importance.json").exists() and (d / "art" / "surrogate_tree.txt").exists()


def test_tampered_bundle_is_refused(trained, tmp_path):
    _, cfg, _ = trained
    for f in Path(cfg.out).iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    model = bytearray((tmp_path / "model.onnx").read_bytes())
    model[len(model) // 2] ^= 0xFF
    (tmp_path / "model.onnx").write_bytes(bytes(model))
    with pytest.raises(BundleError, match="sha256"):
        verify_bundle(tmp_path)
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["rule"] = "never alert"
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="signature"):
        verify_bundle(tmp_path)


def test_mlflow_run_has_metrics_and_artifacts(trained):
    import mlflow
    d, cfg, _ = trained
    client = mlflow.tracking.MlflowClient(tracking_uri=cfg.mlflow_uri)
    exp = client.get_experiment_by_name("trey-battery")
    run = client.search_runs([exp.experiment_id])[0]
    assert "lstm.sum30_mae" in run.data.metrics and "parity.int8_vs_fp32_alert_agreement" in run.data.metrics
    assert len(client.get_metric_history(run.info.run_id, "val_loss")) >= 1
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"loss_curve.png", "forecast_vs_truth.png", "leaderboard.json", "bundle"} <= names
    assert np.isfinite(run.data.metrics["oracle.sum30_mae"])
    # registered in the Model Registry, lineage to this run, identity of the bundle it wrote
    mv = client.get_model_version("trey-battery", "1")
    assert mv.run_id == run.info.run_id and mv.tags["bundle.sha256"] == verify_bundle(cfg.out).sha256


def test_training_loader_accepts_ingest_style_csv_directory(tmp_path):
    """A directory of date-partitioned CSVs (seed schema + vehicle_id, as the MQTT ingest
    writes) loads into the same clean histories as one CSV."""
    import csv

    from agent.schema import SEED_COLUMNS
    from export.battery.data import load_histories
    from export.battery.fleet import generate_fleet
    generate_fleet(3, 5, tmp_path / "fleet")
    with open(tmp_path / "fleet" / "battery_history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        day = r["Date"][:10]
        part = tmp_path / "ingest" / f"date={day}"
        part.mkdir(parents=True, exist_ok=True)
        f = part / "part-0.csv"
        new = not f.exists()
        with open(f, "a", newline="") as out:
            w = csv.DictWriter(out, fieldnames=("vehicle_id",) + SEED_COLUMNS)
            if new:
                w.writeheader()
            w.writerow({"vehicle_id": f"VIN{r['Battery_ID']}", **r})
    one, _, truth = load_histories(tmp_path / "fleet" / "battery_history.csv")
    many, stats, no_truth = load_histories(tmp_path / "ingest")
    assert truth is not None and no_truth is None
    assert sorted(one) == sorted(many)
    for bid in one:
        np.testing.assert_allclose(one[bid].cycles, many[bid].cycles)
        np.testing.assert_allclose(one[bid].lifetime, many[bid].lifetime)
