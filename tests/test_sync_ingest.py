"""Cloud ingest processes (`trey-export ingest`) on an MQTT 5 shared subscription: stateless
workers split the load into their own landing files, SIGTERM is clean, and `trey-export lake
compact` makes every message land in the curated tables exactly once; the fleet summary
(a Spark job) is produced from the lake."""

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
from export.ingest import landing_files, read_alerts, read_daily, read_landing
from tests.conftest import ROOT, wait_until
from tests.sync_support import agent_cfg, make_row, open_store, persistent_conf, store_daily_row

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def start_worker(broker, out, wid):
    return subprocess.Popen([sys.executable, "-m", "export.cli", "ingest", "--broker", broker.address,
                             "--lake", str(out), "--worker-id", wid, "--flush-ms", "50"],
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
    kinds = lambda: read_landing(out)["kind"].value_counts()          # noqa: E731
    wait_until(lambda: kinds().get("daily", 0) >= n_rows and kinds().get("alert", 0) >= n_alerts, 30,
               what="all rows landed")

    # a duplicate delivery (same msg_id, e.g. an agent re-sending after a crash) lands twice ...
    dup = T.daily_payload("CAR-0", make_row("BAT", 3), msg_id=None)
    landed = len(read_landing(out))
    cloud = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="replayer", protocol=mqtt.MQTTv5)
    cloud.connect(b.host, b.port)
    cloud.loop_start()
    for _ in range(2):
        cloud.publish(T.daily_topic("CAR-0"), T.encode(dup), qos=1).wait_for_publish(5)
    cloud.loop_stop()
    cloud.disconnect()
    wait_until(lambda: len(read_landing(out)) >= landed + 2, 10, what="the replayed row landed twice")
    time.sleep(0.5)
    for _, _, sync in cars:
        sync.stop()
    stats += [stop_worker(w1), stop_worker(w2)]
    assert all(s["write_errors"] == 0 for s in stats)
    assert not list(out.glob("landing/*/.tmp-*"))                   # every file finished and renamed

    # ... and the compaction job (a real `trey-export lake compact` process) keeps it once
    r = subprocess.run([sys.executable, "-m", "export.cli", "lake", "compact", "--lake", str(out),
                        "--master", "local[1]"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    comp = json.loads(r.stdout.strip().splitlines()[-1])
    assert comp["duplicates"] >= 1 and comp["rows"]["daily"] == n_rows + 1
    # quiet: Spark's start banner, then one line per stage of the job, no Spark INFO/WARN chatter
    noise = [ln for ln in r.stderr.splitlines() if ("INFO" in ln or "WARN " in ln) and "INFO export." not in ln]
    assert not noise and len(r.stderr.splitlines()) <= 12, r.stderr[-3000:]
    daily = read_daily(out)
    assert len(daily) == n_rows + 1 and daily["msg_id"].is_unique
    assert daily.duplicated(["vehicle_id", "Battery_ID", "Date"]).sum() == 1      # only the deliberate re-send
    assert len(read_alerts(out)) == n_alerts
    # load split: both workers wrote landing files, and both a real share
    per_worker = read_landing(out).query("kind == 'daily'")["worker"].value_counts().to_dict()
    assert set(per_worker) == {"w1", "w2"}, per_worker
    assert min(per_worker.values()) >= 0.15 * n_rows, per_worker
    assert {f.name.split("-")[1] for f in landing_files(out)} == {"w1", "w2"}

    # the fleet summary (dashboard of the original design), a Spark job over the same lake
    summ = tmp_path / "summary"
    r = subprocess.run([sys.executable, "-m", "export.cli", "ingest", "summary", "--lake", str(out),
                        "--out", str(summ), "--master", "local[1]"], cwd=ROOT, env=ENV, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    counts = (summ / "alerts_per_kind_day.csv").read_text().splitlines()
    assert counts[0] == "date,kind,change,count"
    assert sum(int(line.split(",")[3]) for line in counts[1:]) == n_alerts
    open_v = (summ / "vehicles_open_alerts.csv").read_text().splitlines()
    assert sorted(line.split(",")[0] for line in open_v[1:]) == ["CAR-0", "CAR-1", "CAR-2"]
    cover = (summ / "daily_rows_per_day.csv").read_text().splitlines()
    assert cover[0] == "date,vehicles,rows" and sum(int(x.split(",")[2]) for x in cover[1:]) == n_rows + 1
    assert (summ / "fleet_alerts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_landing_file_is_whole_or_absent_and_a_crashed_write_is_swept(tmp_path):
    """A landing file appears by rename only; a worker killed mid-write leaves a hidden temp file
    that no reader sees and that its next start removes (its messages were never acked)."""
    from export.ingest import LandingWriter
    p = T.daily_payload("CAR-1", make_row("B", 0))
    w = LandingWriter(tmp_path, "w1")
    assert w.write([("daily", "CAR-1", T.daily_topic("CAR-1"), json.dumps(p), time.time())]) == 1
    [f] = landing_files(tmp_path)
    assert f.name.startswith("part-w1-") and f.suffix == ".parquet"
    torn = f.parent / (".tmp-part-w1-" + "0" * 32 + ".parquet")
    torn.write_bytes(f.read_bytes()[:40])                          # a crash mid-write
    other = f.parent / (".tmp-part-w2-" + "0" * 32 + ".parquet")   # another worker's, still writing
    other.write_bytes(b"PAR1")
    assert len(read_landing(tmp_path)) == 1                          # readers skip hidden files
    LandingWriter(tmp_path, "w1")                                    # restart of w1
    assert not torn.exists() and other.exists()
    got = read_landing(tmp_path)
    assert list(got["msg_id"]) == [p["msg_id"]] and json.loads(got["payload"][0]) == p
