"""Helpers for the MQTT sync / ingest tests (owner: sync)."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from agent.config import config_from_dict
from agent.schema import DAILY_COLUMNS

try:                                    # the bus layer's real store
    from agent.store import StateStore
except ImportError:                     # pragma: no cover - only until agent/store.py lands
    StateStore = None


class _FallbackStore:
    """Minimal stand-in with the documented StateStore contract (transaction, add_row_hook),
    used only while agent/store.py is not in the tree."""

    def __init__(self, state_dir):
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(Path(state_dir) / "state.db", isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._lock = threading.RLock()
        self._hooks = []
        with self.transaction() as c:
            c.execute("CREATE TABLE IF NOT EXISTS daily (battery TEXT, date TEXT, row TEXT, PRIMARY KEY (battery, date))")

    @contextmanager
    def transaction(self):
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def add_row_hook(self, fn):
        self._hooks.append(fn)

    def close(self):
        self._conn.close()


def open_store(state_dir):
    return (StateStore or _FallbackStore)(state_dir)


def store_daily_row(store, row: dict) -> None:
    """Store one closed daily row the way the pipeline does (row hooks run in its transaction)."""
    if hasattr(store, "store_daily_row"):
        store.store_daily_row(row)
        return
    if hasattr(store, "put_row"):
        store.put_row(row)
        return
    import json
    with store.transaction() as conn:
        conn.execute("INSERT OR REPLACE INTO daily VALUES (?,?,?)", (row["Battery_ID"], row["Date"], json.dumps(row)))
        for fn in store._hooks:
            fn(conn, row)


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


def wait_until(pred, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
