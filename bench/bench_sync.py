"""MQTT sync benchmark (prints numbers, asserts nothing).

1. Drain rate: N daily-row messages are put in the outbox (through the same row hook the
   store calls) while the broker is down; then a private mosquitto starts with a QoS 1
   subscriber and we time the agent draining the outbox to empty (PUBACK-confirmed, rows
   deleted), for a few in-flight windows.
2. End to end: a full outbox (fleet-like rows: 1,000 batteries per date) drained through the broker into 1 or 2 ingest workers
   (shared subscription, fsync per batch, msg_id ledger), timed until the last row is durable.
3. Bytes per car per day on the wire: a byte-counting TCP relay sits between the agent and
   the broker; we measure one connection (CONNECT, SUBSCRIBE, retained status, clean
   offline status, DISCONNECT) and 30 days of daily rows plus a few alert changes, both
   directions, MQTT 5 over plain TCP (TLS adds ~22-29 bytes per record + the handshake).

    python -m bench.bench_sync [--rows 5000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _broker(work: Path):
    port = _free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 1000000\nmax_inflight_messages 0\n")
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    p = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return p, port


def _store(state: Path):
    from agent.store import StateStore
    return StateStore(state)


def _row(day: int, battery: str = "BAT-0001234") -> dict:
    from agent.schema import DAILY_COLUMNS
    r = {c: None for c in DAILY_COLUMNS}
    r.update(Date=(dt.date(2025, 1, 1) + dt.timedelta(days=day)).isoformat(), Battery_ID=battery,
             Battery_Age_Days=400 + day, Number_Of_Trips=3, Daily_Trip_Duration=52.25,
             Daily_Cycles_Used=0.3712, Lifetime_Cycles_Used=151.2043 + day * 0.37, Battery_Rated_Cycles=200,
             Min_Cranking_Voltage=10.412, Resting_Voltage=12.581, Min_Temperature=3.0, Max_Temperature=17.0)
    return r


def _subscriber(port: int, topic: str, counter: list):
    import paho.mqtt.client as mqtt
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-cloud", protocol=mqtt.MQTTv5)
    c.on_message = lambda *a: counter.__setitem__(0, counter[0] + 1)
    c.connect("127.0.0.1", port)
    c.subscribe(topic, 1)
    c.loop_start()
    time.sleep(0.3)
    return c


def drain_rate(rows: int, window: int) -> float:
    from agent.alerts import Alerts
    from agent.config import config_from_dict
    from agent.sync import Sync
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        p, port = _broker(tmp)
        cfg = config_from_dict({"vehicle": {"id": "BENCH-1"}, "state": {"dir": str(tmp / "state")},
                                "mqtt": {"host": "127.0.0.1", "port": port, "max_inflight": window}})
        store = _store(tmp / "state")
        sync = Sync(cfg, store, Alerts(store))
        with store.transaction() as conn:     # fill while offline, through the real row hook
            for i in range(rows):
                sync._row_hook(conn, _row(i))
        got = [0]
        sub = _subscriber(port, "trey/v1/+/telemetry/daily", got)
        t0 = time.perf_counter()
        sync.start()
        sync.wait_drained(300)
        dt_s = time.perf_counter() - t0          # every row PUBACKed and deleted
        deadline = time.monotonic() + 10          # (the subscriber may still be receiving)
        while got[0] < rows and time.monotonic() < deadline:
            time.sleep(0.01)
        sync.stop()
        sub.loop_stop()
        sub.disconnect()
        p.terminate()
        p.wait()
        if got[0] < rows:
            print(f"  (subscriber received only {got[0]} of {rows})")
        return rows / dt_s


def end_to_end_rate(rows: int, workers: int = 1) -> float:
    """Full outbox -> broker -> `workers` ingest workers (fsynced Parquet landing files)."""
    from agent.config import config_from_dict
    from agent.sync import Sync
    from export.ingest import IngestWorker
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        p, port = _broker(tmp)
        cfg = config_from_dict({"vehicle": {"id": "BENCH-2"}, "state": {"dir": str(tmp / "state")},
                                "mqtt": {"host": "127.0.0.1", "port": port, "max_inflight": 100}})
        store = _store(tmp / "state")
        sync = Sync(cfg, store)
        with store.transaction() as conn:      # a fleet's day: many batteries, few dates
            for i in range(rows):
                sync._row_hook(conn, _row(i // 1000, f"BAT-{i % 1000:06d}"))
        ws = [IngestWorker("127.0.0.1", port, tmp / "ds", worker_id=f"w{i}").start() for i in range(workers)]
        while not all(w.connected for w in ws):
            time.sleep(0.05)
        time.sleep(0.3)
        t0 = time.perf_counter()
        sync.start()
        deadline = time.monotonic() + 300
        while sum(w.writer.written["daily"] for w in ws) < rows and time.monotonic() < deadline:
            time.sleep(0.01)
        dt_s = time.perf_counter() - t0
        done = sum(w.writer.written["daily"] for w in ws)
        sync.stop()
        for w in ws:
            w.stop()
        p.terminate()
        p.wait()
        return done / dt_s


class _Relay:
    """TCP relay counting bytes in both directions."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen()
        self.port = self.srv.getsockname()[1]
        self.up = self.down = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                a, _ = self.srv.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(a, b, "up"), daemon=True).start()
            threading.Thread(target=self._pipe, args=(b, a, "down"), daemon=True).start()

    def _pipe(self, src, dst, attr):
        try:
            while data := src.recv(65536):
                setattr(self, attr, getattr(self, attr) + len(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def total(self) -> int:
        return self.up + self.down


def wire_bytes(days: int = 30) -> dict:
    from agent.alerts import Alerts
    from agent.config import config_from_dict
    from agent.sync import Sync
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        p, port = _broker(tmp)
        got = [0]
        sub = _subscriber(port, "trey/v1/#", got)
        relay = _Relay(port)
        cfg = config_from_dict({"vehicle": {"id": "WVWZZZ1JZXW000001"}, "state": {"dir": str(tmp / "state")},
                                "mqtt": {"host": "127.0.0.1", "port": relay.port}})
        store = _store(tmp / "state")
        alerts = Alerts(store)
        sync = Sync(cfg, store, alerts).start()
        deadline = time.monotonic() + 10
        while not sync.status()["connected"] and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        connect_bytes = relay.total()
        for d in range(days):
            with store.transaction() as conn:
                sync._row_hook(conn, _row(d))
        sync.wait_drained(30)
        time.sleep(0.3)
        rows_bytes = relay.total() - connect_bytes
        before = relay.total()
        a, _ = alerts.raise_or_update("battery:BAT-0001234", "battery", "warning",
                                      "Battery expected to reach end of life in about 21 days",
                                      "Schedule a service appointment.",
                                      {"forecast_daily_cycles": [0.37] * 30, "projected_lifetime_cycles_30d": 202.3,
                                       "rated_cycles": 200, "recent_mean_daily_cycles": 0.37, "fleet_norm": 0.28})
        sync.wait_drained(30)
        time.sleep(0.3)
        alert_bytes = relay.total() - before
        before = relay.total()
        sync.stop()
        time.sleep(0.3)
        disconnect_bytes = relay.total() - before
        sub.loop_stop()
        sub.disconnect()
        p.terminate()
        p.wait()
        relay.srv.close()
    per_row = rows_bytes / days
    session = connect_bytes + disconnect_bytes
    return {"per_daily_row": per_row, "per_alert_change": alert_bytes, "per_connection": session,
            "per_car_day": per_row + session}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5000)
    args = ap.parse_args(argv if argv is not None else [])
    for window in (20, 100):
        rate = drain_rate(args.rows, window)
        print(f"sync drain: {args.rows} outbox messages -> local mosquitto, window {window}: {rate:,.0f} msg/s")
    for workers in (1, 2):
        rate = end_to_end_rate(args.rows, workers)
        print(f"sync end to end: outbox -> mosquitto -> {workers} ingest worker(s), fsynced landing files: "
              f"{rate:,.0f} msg/s")
    w = wire_bytes()
    print(f"sync wire: {w['per_daily_row']:.0f} B per daily row, {w['per_alert_change']:.0f} B per alert change "
          f"(with a 30-day forecast in its explanation), {w['per_connection']:.0f} B per connection "
          f"(connect, subscribe, retained status, offline status, disconnect)")
    print(f"sync wire: ~{w['per_car_day']:.0f} B per car per day (1 row + 1 connection; alerts are rare; "
          f"keepalive adds 4 B per {60} s while connected)")


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])
