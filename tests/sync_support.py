"""Helpers for the MQTT sync / ingest tests (owner: sync)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
from pathlib import Path

from agent import topics as T
from agent.config import config_from_dict
from agent.schema import DAILY_COLUMNS
from agent.store import StateStore


def open_store(state_dir):
    return StateStore(state_dir)


def store_daily_row(store, row: dict) -> bool:
    """Store one closed daily row as the pipeline does (row hooks run in its transaction)."""
    return store.store_daily_row(row)


def make_row(battery: str, day: int, lifetime: float = 0.0) -> dict:
    date = (dt.date(2025, 1, 1) + dt.timedelta(days=day)).isoformat()
    row = {c: None for c in DAILY_COLUMNS}
    row.update(Date=date, Battery_ID=battery, Battery_Age_Days=100 + day, Number_Of_Trips=2,
               Daily_Trip_Duration=41.5, Daily_Cycles_Used=0.35, Lifetime_Cycles_Used=round(lifetime + 0.35 * day, 4),
               Battery_Rated_Cycles=200, Min_Cranking_Voltage=10.1, Resting_Voltage=12.6,
               Min_Temperature=4.0, Max_Temperature=19.0)
    return row


def agent_cfg(state_dir, host: str, port: int, vehicle_id: str = "CAR-1", **mqtt):
    m = {"host": host, "port": port, **mqtt}
    return config_from_dict({"vehicle": {"id": vehicle_id}, "state": {"dir": str(state_dir)}, "mqtt": m})


def persistent_conf(workdir: Path, extra: str = "") -> str:
    """mosquitto that keeps sessions + queued messages across a (graceful) restart, as a
    production broker does; `user root` so it can write into pytest's private tmp dir."""
    return f"persistence true\npersistence_location {workdir}/\nuser root\n{extra}"


class LaggyRelay:
    """TCP relay to the broker that delays everything the broker sends back (CONNACK, PUBACKs)
    by `lag` seconds: messages reach the cloud well before the agent learns they did, so a
    SIGKILL in that window leaves delivered messages in the outbox (re-sent, deduplicated)."""

    def __init__(self, target_port: int, lag: float = 0.3):
        import queue
        import socket
        self._queue_mod, self._socket = queue, socket
        self.target, self.lag = target_port, lag
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen()
        self.port = self.srv.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._closed:
            try:
                a, _ = self.srv.accept()
                b = self._socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                continue
            q = self._queue_mod.Queue()
            threading.Thread(target=self._pipe, args=(a, b, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(b, a, q), daemon=True).start()
            threading.Thread(target=self._delayed_send, args=(q, a, b), daemon=True).start()

    def _pipe(self, src, dst, q):
        try:
            while data := src.recv(65536):
                if q is None:
                    dst.sendall(data)
                else:
                    q.put((time.monotonic() + self.lag, data))
        except OSError:
            pass
        if q is not None:
            q.put((0, b""))
        else:
            self._shut(src, dst)

    def _delayed_send(self, q, dst, other):
        while True:
            due, data = q.get()
            if not data:
                break
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                dst.sendall(data)
            except OSError:
                break
        self._shut(dst, other)

    def _shut(self, *socks):
        for s in socks:
            try:
                s.shutdown(self._socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self._closed = True
        self.srv.close()


def fuzz_payloads(rng, n: int, VID: str):
    """n malformed (topic, payload) pairs over the three downlink topics."""
    good_ack = T.ack_message(VID, 1)
    good_comp = T.components_message(VID, {"vin": "VIN1", "components": [{"component": "alternator", "note": "x"}]})
    # well-formed release metadata with a signature no release key made
    release = {"signed": {"_type": "release", "spec": "trey-release/1", "slot": "battery", "version": 9,
                          "expires": "2999-01-01T00:00:00Z", "target": {"length": 9, "sha256": "0" * 64},
                          "cohort": None, "shadow": False, "promote": None},
               "signatures": [{"keyid": "0" * 64, "sig": "AAAA"}]}
    good_model = {"schema": 1, "msg_id": T.new_msg_id(), "name": "battery", "release": release,
                  "bundle": base64.b64encode(b"not a tar").decode()}
    topics = [T.ack_topic(VID), T.components_topic(VID), T.model_topic("battery")]
    mutations = [
        lambda d: rng.randbytes(rng.randint(0, 300)),
        lambda d: b"{" * rng.randint(1, 50),
        lambda d: b"[" * 100_000 + b"]" * 100_000,                       # deep nesting
        lambda d: json.dumps([1, 2, 3]).encode(),
        lambda d: b"\xff\xfe" + json.dumps(d).encode(),                   # not UTF-8
        lambda d: json.dumps({**d, "schema": rng.choice([0, 2, "1", None, True, 1.5])}).encode(),
        lambda d: json.dumps({k: v for k, v in d.items() if k != "msg_id"}).encode(),
        lambda d: json.dumps({**d, "msg_id": rng.choice(["x", 5, "g" * 32])}).encode(),
        lambda d: json.dumps({**d, "vehicle_id": "SOMEONE-ELSE"}).encode(),
        lambda d: json.dumps({**d, "alert_id": rng.choice(["1", True, -3, 1.5, None, 2 ** 60])}).encode(),
        lambda d: json.dumps({**d, "components": rng.choice([[], "x", [1], [{"component": 3, "note": "n"}]])}).encode(),
        lambda d: json.dumps({**d, "extra": 1}).encode(),
        lambda d: json.dumps({**d, "padding": "x" * 300_000}).encode(),   # oversize
        lambda d: json.dumps({**d, "name": "compliance"}).encode(),
        lambda d: json.dumps({**d, "bundle": "***"}).encode(),
        lambda d: json.dumps({**d, "release": rng.choice(["", [], {"signed": 1}])}).encode(),
        lambda d: b"NaN",
        lambda d: b"",
    ]
    goods = {topics[0]: good_ack, topics[1]: good_comp, topics[2]: good_model}
    out = []
    for _ in range(n):
        t = rng.choice(topics)
        out.append((t, rng.choice(mutations)(goods[t])))
    # well-formed but wrong: release metadata not signed by a release key
    out += [(topics[2], json.dumps(good_model).encode())] * 5
    return out
