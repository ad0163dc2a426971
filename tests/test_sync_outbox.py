"""Outbox bound: with the broker down long enough to overflow it, the oldest telemetry is
dropped first, alerts survive, and the drop counter matches exactly what never arrived."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt

from agent import topics as T
from agent.alerts import Alerts
from agent.sync import Sync
from export.ingest import IngestWorker, read_alerts, read_daily
from export.lake.compact import compact
from tests.conftest import Broker, wait_until
from tests.sync_support import agent_cfg, make_row, open_store, store_daily_row


def test_overflow_drops_telemetry_first_and_counts_it(tmp_path, spark):
    b = Broker(tmp_path / "broker")            # created, NOT started: the car is offline
    store = open_store(tmp_path / "state")
    alerts = Alerts(store)
    sync = Sync(agent_cfg(tmp_path / "state", b.host, b.port, outbox_max_rows=50), store, alerts,
                backoff_min=0.05, backoff_max=0.2).start()
    n_rows, n_alerts = 80, 12
    for day in range(n_rows):
        store_daily_row(store, make_row("BAT-X", day))
        if day % 7 == 0 and day // 7 < n_alerts:
            alerts.raise_or_update(f"compliance:V:{day}", "compliance", "warning", "Part", f"part {day}", {})
    st = sync.status()["outbox"]
    assert st["rows"] == 50
    assert st["dropped_telemetry"] == n_rows + n_alerts - 50 and st["dropped_alerts"] == 0
    time.sleep(0.5)                                # still offline, still bounded
    assert sync.status()["connected"] is False and sync.status()["connects"] == 0
    assert sync.status()["downlink_live"] is False

    # Connectivity comes back: what was kept arrives, oldest first, and nothing else.
    b.start()
    try:
        ingest = IngestWorker(b.host, b.port, tmp_path / "ds", worker_id="w1", flush_s=0.05).start()
        wait_until(lambda: ingest.connected, 10, what="ingest connected")
        assert sync.wait_drained(20), sync.status()
        # the drops are reported on the retained status topic too
        seen = []
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="status-reader", protocol=mqtt.MQTTv5)
        c.on_message = lambda cl, u, m: seen.append(json.loads(m.payload))
        c.connect(b.host, b.port)
        c.subscribe(T.status_topic("CAR-1"), 1)
        c.loop_start()
        wait_until(lambda: seen, 10, what="retained status")
        c.loop_stop()
        c.disconnect()
        assert seen[-1]["state"] == "online"
        assert seen[-1]["outbox"]["dropped_telemetry"] == st["dropped_telemetry"]
        assert seen[-1]["outbox"]["dropped_alerts"] == 0
        kept = n_rows + n_alerts - st["dropped_telemetry"]
        wait_until(lambda: sum(ingest.writer.written[k] for k in ("daily", "alert")) >= kept, 20,
                   what=f"{kept} messages: {ingest.stats()}")
        ingest.stop()
        sync.stop()
    finally:
        b.stop()
    compact(spark, str(tmp_path / "ds"))
    daily, al = read_daily(tmp_path / "ds"), read_alerts(tmp_path / "ds")
    assert len(al) == n_alerts                                            # every alert survived
    assert len(daily) == n_rows - st["dropped_telemetry"]                 # counter == what is missing
    first_kept = 80 - len(daily)
    assert list(daily["Battery_Age_Days"]) == [100 + d for d in range(first_kept, n_rows)]  # the oldest went


def test_alerts_dropped_last_and_counted(tmp_path):
    b = Broker(tmp_path / "broker")
    store = open_store(tmp_path / "state")
    alerts = Alerts(store)
    sync = Sync(agent_cfg(tmp_path / "state", b.host, b.port, outbox_max_rows=10), store, alerts,
                backoff_min=0.05, backoff_max=0.2).start()
    for day in range(5):
        store_daily_row(store, make_row("BAT-Y", day))
    for i in range(14):
        alerts.raise_or_update(f"compliance:V:{i}", "compliance", "warning", "Part", f"part {i}", {})
    st = sync.status()["outbox"]
    sync.stop()
    # 19 messages, room for 10: all 5 telemetry rows go first, then the 4 oldest alerts
    assert st == {**st, "rows": 10, "dropped_telemetry": 5, "dropped_alerts": 4}


def test_byte_bound_and_counters_survive_restart(tmp_path):
    b = Broker(tmp_path / "broker")            # never started
    store = open_store(tmp_path / "state")
    cfg = agent_cfg(tmp_path / "state", b.host, b.port, outbox_max_bytes=2000)
    sync = Sync(cfg, store)
    for day in range(10):
        store_daily_row(store, make_row("BAT-Z", day))
    st = sync.status()["outbox"]
    assert st["bytes"] <= 2000 and st["rows"] + st["dropped_telemetry"] == 10 and st["dropped_telemetry"] >= 5
    store.close()
    again = Sync(cfg, open_store(tmp_path / "state"))       # a restart keeps the outbox and its counters
    assert again.status()["outbox"] == st
