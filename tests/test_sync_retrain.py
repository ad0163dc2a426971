"""The loop closes: daily rows stored by cars go through their MQTT outboxes, the broker and
`trey-export ingest` into the lake, `lake compact` curates them, and `trey-export train battery`
trains a (tiny) signed model from the lake (a Spark job cleans the batteries and builds their
sampled windows) which the agent's forecaster loads."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import defaultdict

from agent.bundle import verify_bundle
from agent.forecast import BatteryForecaster
from agent.schema import DAILY_COLUMNS
from agent.sync import Sync
from export.ingest import IngestWorker, read_daily
from export.lake.compact import compact
from tests.conftest import ROOT, wait_until
from tests.sync_support import agent_cfg, open_store

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
INTS = ("Battery_Age_Days", "Number_Of_Trips", "Battery_Rated_Cycles")


def fleet_rows(tmp, batteries: int, days: int) -> dict[str, list[dict]]:
    """A generated fleet's last `days` days per battery, as the agent's daily rows."""
    from export.battery.fleet import RAW_FILE, generate_fleet
    generate_fleet(batteries, 3, tmp / "fleet")
    by = defaultdict(dict)
    with open(tmp / "fleet" / RAW_FILE, newline="") as fh:
        for r in csv.DictReader(fh):
            date = r["Date"][:10]
            row = {c: None for c in DAILY_COLUMNS}
            row.update({k: (int(float(v)) if k in INTS else float(v)) for k, v in r.items()
                        if k not in ("Date", "Battery_ID") and v != ""})
            row.update(Date=date, Battery_ID=r["Battery_ID"])
            by[r["Battery_ID"]][date] = row
    return {b: [d[k] for k in sorted(d)][-days:] for b, d in by.items()}


def test_train_battery_model_from_ingested_rows(tmp_path, make_broker, spark):
    # a backfill of 500 days: let the broker keep up to 500 un-acked messages in flight to the
    # ingest so one durable batch (one fsync per date partition) covers many rows
    broker = make_broker("broker", extra_conf="max_inflight_messages 500").start()
    fleet = fleet_rows(tmp_path, 12, 500)
    ingest = IngestWorker(broker.host, broker.port, tmp_path / "dataset", worker_id="w1").start()
    wait_until(lambda: ingest.connected, 10, what="ingest connected")
    cars = []
    for i, bids in enumerate((list(fleet)[0:4], list(fleet)[4:8], list(fleet)[8:12])):   # 3 cars
        store = open_store(tmp_path / f"car{i}")
        sync = Sync(agent_cfg(tmp_path / f"car{i}", broker.host, broker.port, f"CAR-{i}", max_inflight=100),
                    store, backoff_min=0.05).start()
        for bid in bids:
            for row in fleet[bid]:
                assert store.store_daily_row(row)
        cars.append(sync)
    n = sum(len(v) for v in fleet.values())
    for sync in cars:
        assert sync.wait_drained(60), sync.status()
    wait_until(lambda: ingest.writer.written["daily"] >= n, 60, what=f"{n} rows ingested: {ingest.stats()}")
    for sync in cars:
        sync.stop()
    ingest.stop()
    compact(spark, str(tmp_path / "dataset"))
    assert len(read_daily(tmp_path / "dataset")) == n

    bundle_dir = tmp_path / "bundle"
    r = subprocess.run([sys.executable, "-m", "export.cli", "train", "battery",
                        "--data", str(tmp_path / "dataset"), "--master", "local[1]", "--out", str(bundle_dir),
                        "--artifacts", str(tmp_path / "art"), "--window", "28", "--max-epochs", "2",
                        "--lstm-budget", "10", "--search-budget", "5", "--train-stride", "4", "--threads", "1",
                        "--max-windows", "900", "--no-mlflow", "--no-progress"],
                       cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    b = verify_bundle(bundle_dir)                       # signed, hashes OK
    training = b.manifest["training"]
    assert training["cleaning"]["rows"] == n            # trained on exactly the ingested rows
    assert sum(training["batteries"].values()) == 12
    # the windows were built by Spark and sampled to what the trainer asked for
    assert sum(training["windows"].values()) <= 900 < sum(training["window_sampling"]["planned"].values())
    built = [ln for ln in r.stderr.splitlines() if "train data: build" in ln and " windows of 12 batteries" in ln]
    assert len(built) == 1 and "done in" in built[0], r.stderr[-3000:]
    assert "Setting default log level" not in r.stderr and "incubator" not in r.stderr
    fc = BatteryForecaster.from_bundle(b).forecast(fleet[list(fleet)[0]])
    assert len(fc["forecast_daily_cycles"]) == 30 and all(x >= 0 for x in fc["forecast_daily_cycles"])
    print(json.dumps({"rows": n, "winner": json.loads(r.stdout).get("winner")}))
