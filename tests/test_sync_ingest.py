"""Cloud ingest processes (`trey-export ingest`) on an MQTT 5 shared subscription: the load is
split, every message is written exactly once, SIGTERM is clean and dedup survives restarts;
the fleet summary is produced from the ingested data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt

from agent import topics as T
from agent.alerts import Alerts
from agent.sync import Sync
from export.ingest import daily_files, read_alerts, read_daily
from tests.conftest import ROOT, wait_until
from tests.sync_support import agent_cfg, make_row, open_store, persistent_conf, store_daily_row

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def start_worker(broker, out, wid):
    return subprocess.Popen([sys.executable, "-m", "export.cli", "ingest", "--broker", broker.address,
                             "--out", str(out), "--worker-id", wid, "--flush-ms", "50"],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_subscribed(broker, wid, n=1):
    log = broker.workdir / "mosquitto.log"
    wait_until(lambda: log.exists() and log.read_text().count(f"as trey-ingest-ingest-{wid} ") >= n, 20,
               what=f"ingest worker {wid} connected")
    time.sleep(0.3)                       # SUBSCRIBE follows CONNECT


def stop_worker(p) -> dict:
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


def test_two_workers_split_load_exactly_once_with_sigterm_restart(tmp_path, make_broker):
    b = make_broker("broker", extra_conf=persistent_conf(tmp_path / "broker"))
    b.start()
    out = tmp_path / "dataset"
    w1, w2 = start_worker(b, out, "w1"), start_worker(b, out, "w2")
    wait_subscribed(b, "w1")
    wait_subscribed(b, "w2")

    cars = []
    for i in range(3):
        store = open_store(tmp_path / f"car{i}")
        alerts = Alerts(store)
        sync = Sync(agent_cfg(tmp_path / f"car{i}", b.host, b.port, f"CAR-{i}"), store, alerts,
                    backoff_min=0.05, backoff_max=0.3).start()
        cars.append((store, alerts, sync))
    n_days = 120

    def drive(store, alerts):
        for day in range(n_days):
            store_daily_row(store, make_row("BAT", day))
            if day % 30 == 5:
                alerts.raise_or_update(f"battery:{day}", "battery", "warning", "Battery", f"d{day}", {},
                                       vehicle_date=make_row("BAT", day)["Date"])
            time.sleep(0.01)

    threads = [threading.Thread(target=drive, args=(s, a)) for s, a, _ in cars]
    for t in threads:
        t.start()
    time.sleep(0.6)
    stats = [stop_worker(w1)]                  # SIGTERM mid-stream: clean exit, nothing acked is lost
    w1 = start_worker(b, out, "w1")            # same worker id: same session, same ledger
    wait_subscribed(b, "w1", 2)
    for t in threads:
        t.join()
    for _, _, sync in cars:
        assert sync.wait_drained(30), sync.status()
    n_rows, n_alerts = 3 * n_days, 3 * 4
    wait_until(lambda: len(read_daily(out)) >= n_rows and len(read_alerts(out)) >= n_alerts, 30,
               what="all rows ingested")

    # a duplicate delivery (same msg_id, e.g. an agent re-sending after a crash) is not written again
    dup = T.daily_payload("CAR-0", make_row("BAT", 3), msg_id=None)
    first = read_daily(out)
    cloud = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="replayer", protocol=mqtt.MQTTv5)
    cloud.connect(b.host, b.port)
    cloud.loop_start()
    for _ in range(2):
        cloud.publish(T.daily_topic("CAR-0"), T.encode(dup), qos=1).wait_for_publish(5)
    cloud.loop_stop()
    cloud.disconnect()
    wait_until(lambda: len(read_daily(out)) == n_rows + 1, 10, what="the replayed row once")
    time.sleep(0.5)
    for _, _, sync in cars:
        sync.stop()
    stats += [stop_worker(w1), stop_worker(w2)]

    daily = read_daily(out)
    assert len(daily) == n_rows + 1 == len(first) + 1
    assert daily.duplicated(["vehicle_id", "Battery_ID", "Date"]).sum() == 1      # only the deliberate re-send
    assert len(read_alerts(out)) == n_alerts
    assert sum(s["duplicates"] for s in stats) >= 1
    # load split: both workers wrote part files, and both wrote a real share
    per_worker = {}
    for f in daily_files(out):
        wid = f.stem.split("-", 1)[1]
        per_worker[wid] = per_worker.get(wid, 0) + sum(1 for _ in f.open()) - 1
    assert set(per_worker) == {"w1", "w2"}, per_worker
    assert min(per_worker.values()) >= 0.15 * n_rows, per_worker

    # the fleet summary (dashboard of the original design) from the same data
    summ = tmp_path / "summary"
    r = subprocess.run([sys.executable, "-m", "export.cli", "ingest", "summary", "--data", str(out),
                        "--out", str(summ)], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    counts = (summ / "alerts_per_kind_day.csv").read_text().splitlines()
    assert counts[0] == "date,kind,change,count"
    assert sum(int(line.split(",")[3]) for line in counts[1:]) == n_alerts
    open_v = (summ / "vehicles_open_alerts.csv").read_text().splitlines()
    assert sorted(line.split(",")[0] for line in open_v[1:]) == ["CAR-0", "CAR-1", "CAR-2"]
    assert (summ / "fleet_alerts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ledger_survives_restart_and_torn_batch_is_cut(tmp_path):
    from export.ingest import DatasetWriter
    from tests.sync_support import make_row
    p1, p2 = T.daily_payload("CAR-1", make_row("B", 0)), T.daily_payload("CAR-1", make_row("B", 1))
    w = DatasetWriter(tmp_path, "w1")
    assert w.write([("daily", "CAR-1", p1)]) == 1
    w.close()
    part = daily_files(tmp_path)[0]
    committed = part.read_bytes()
    part.write_bytes(committed + b"2025-01-01,B,10")       # a crash between append and commit
    w = DatasetWriter(tmp_path, "w1")                      # restart: the torn tail is cut
    assert part.read_bytes() == committed
    assert w.write([("daily", "CAR-1", p1), ("daily", "CAR-1", p1)]) == 0   # redelivered: already in the ledger
    assert w.write([("daily", "CAR-1", p2)]) == 1
    w.close()
    assert list(read_daily(tmp_path)["Date"]) == ["2025-01-01", "2025-01-02"]


def test_ledger_forgets_msg_ids_after_the_retention_only(tmp_path):
    """The dedup ledger is bounded: msg_ids older than dedup_days are forgotten (counted),
    recent ones still stop re-deliveries; dedup_days=0 keeps everything."""
    from export.ingest import DatasetWriter
    from tests.sync_support import make_row
    old, new = T.daily_payload("CAR-1", make_row("B", 0)), T.daily_payload("CAR-1", make_row("B", 1))
    w = DatasetWriter(tmp_path, "w1", dedup_days=30)
    assert w.write([("daily", "CAR-1", old)]) == 1
    w.db.execute("UPDATE seen SET at = at - 31 * 86400 WHERE msg_id = ?", (old["msg_id"],))   # 31 days ago
    assert w.write([("daily", "CAR-1", new)]) == 1
    keep_all = DatasetWriter(tmp_path, "w2", dedup_days=0)          # another worker, no retention: prunes nothing
    assert keep_all.pruned == 0 and keep_all.write([("daily", "CAR-1", old)]) == 0
    keep_all.close()
    assert w.prune() == 1 and w.pruned == 1
    assert w.write([("daily", "CAR-1", new)]) == 0                   # still remembered
    assert w.write([("daily", "CAR-1", old)]) == 1                   # forgotten: a re-delivery this late is new
    w.close()
