"""Store-and-forward against a real mosquitto that is stopped and restarted while the car
keeps producing: every daily row and alert change reaches the lake's curated tables exactly once."""

from __future__ import annotations

import threading
import time

from agent.alerts import Alerts
from agent.sync import Sync
from export.ingest import IngestWorker, read_alerts, read_daily
from export.lake.compact import compact
from tests.conftest import wait_until
from tests.sync_support import agent_cfg, make_row, open_store, persistent_conf, store_daily_row


def test_broker_restarts_lose_nothing_and_duplicate_nothing(tmp_path, make_broker, spark):
    b = make_broker("broker", extra_conf=persistent_conf(tmp_path / "broker"))
    b.start()
    out = tmp_path / "dataset"
    ingest = IngestWorker(b.host, b.port, out, worker_id="w1", flush_s=0.05).start()
    wait_until(lambda: ingest.connected, 10, what="ingest connected")

    store = open_store(tmp_path / "state")
    alerts = Alerts(store)
    sync = Sync(agent_cfg(tmp_path / "state", b.host, b.port, max_inflight=10), store, alerts,
                backoff_min=0.05, backoff_max=0.4).start()

    n_days, batteries = 150, ("BAT-A", "BAT-B")
    changes = []

    def car():
        for day in range(n_days):
            for bat in batteries:
                store_daily_row(store, make_row(bat, day))
            if day % 10 == 0:   # an alert raised, then updated, acknowledged and cleared
                key = f"battery:{day}"
                a, _ = alerts.raise_or_update(key, "battery", "warning", "Battery", f"day {day}", {"d": day})
                alerts.raise_or_update(key, "battery", "critical", "Battery", f"day {day}!", {"d": day})
                alerts.acknowledge(a["id"], by="driver")
                alerts.clear(key)
                changes.append(4)
            time.sleep(0.03)

    producer = threading.Thread(target=car)
    producer.start()
    outages = 0
    while producer.is_alive() and outages < 3:     # three outages while the car keeps producing
        time.sleep(0.5)
        b.stop()
        time.sleep(0.6)
        b.start()
        outages += 1
    producer.join()
    assert outages == 3

    assert sync.wait_drained(30), sync.status()
    n_rows, n_alerts = n_days * len(batteries), sum(changes)
    wait_until(lambda: ingest.writer.written["daily"] >= n_rows and ingest.writer.written["alert"] >= n_alerts,
               30, what=f"ingest of {n_rows} rows/{n_alerts} alert changes: {ingest.stats()}")
    wait_until(lambda: sync.status()["connected"], 10, what="sync reconnected")
    st = sync.status()
    sync.stop()
    ingest.stop()
    compact(spark, str(out))

    daily = read_daily(out)
    assert len(daily) == n_rows                                             # none lost ...
    assert not daily.duplicated(["vehicle_id", "Battery_ID", "Date"]).any()  # ... none twice
    assert set(daily["vehicle_id"]) == {"CAR-1"}
    assert daily["Daily_Trip_Duration"].eq(41.5).all() and daily["Battery_Rated_Cycles"].eq(200).all()
    al = read_alerts(out)
    assert len(al) == n_alerts
    assert not al.duplicated(["alert_id", "revision"]).any()
    assert sorted(al["change"].value_counts().items()) == sorted(
        {"raised": n_alerts // 4, "updated": n_alerts // 4, "acknowledged": n_alerts // 4, "cleared": n_alerts // 4}.items())
    assert st["connects"] >= 4, st                                          # it did reconnect after each outage
    assert st["outbox"]["dropped_telemetry"] == st["outbox"]["dropped_alerts"] == 0
    assert st["outbox"]["rows"] == 0 and st["outbox"]["sent"] == n_rows + n_alerts
