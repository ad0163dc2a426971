"""The agent's durable state: one SQLite database (WAL) under the state directory.

API (other modules rely on it):

    store = StateStore(state_dir)                  # creates <state_dir>/state.db and the tables
    with store.transaction() as conn:              # BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error);
        conn.execute(...)                          # re-entrant in the same thread; thread-safe
    store.add_row_hook(fn)                         # fn(conn, row) runs INSIDE the transaction that
                                                   # stores a closed daily row (only when it is new)
    store.store_daily_row(row, checkpoint=None)    # -> True if inserted; a checkpoint dict given here
                                                   # is saved in the same transaction (crash safety)
    store.history(battery_id=None) -> list[dict]   # keys = agent.schema.DAILY_COLUMNS, ordered by date
    store.counters() -> dict                       # drop counters etc. {name: int}
    store.set_counters({...}) / store.save_checkpoint(state) / store.load_checkpoint() -> dict | None
    store.close()
    store.integrity -> dict                        # start-up check (agent.store_integrity): "ok" | "recovered"

Tables owned here: `daily` (one row per battery per day, primary key (battery_id, date), columns
named like DAILY_COLUMNS), `counters` (name, value) and `kv` (key, JSON value; the reader's
checkpoint lives under "pipeline.checkpoint"). Other modules create their own tables through
`transaction()`.

Crash safety: a daily row, the rollup checkpoint that follows it and the counters are committed
in ONE transaction, so after SIGKILL the database holds either the state before the day closed
or after it - never a lost closed day, never a lifetime going backwards.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path

from agent.schema import DAILY_COLUMNS

log = logging.getLogger("agent.store")
CHECKPOINT_KEY = "pipeline.checkpoint"
RECOVERY_KEY = "store.last_recovery"
_COLS = ", ".join(f'"{c}"' for c in DAILY_COLUMNS)
_QMARKS = ", ".join("?" for _ in DAILY_COLUMNS)


class StateStore:
    def __init__(self, state_dir: str | Path):
        from agent import store_integrity as integrity
        self.dir = Path(state_dir)
        integrity.check_state_dir(self.dir)           # StateDirError: one line, exit 3
        self.path = self.dir / "state.db"
        # A damaged database is moved aside and what can be read is copied into a fresh one.
        self.integrity = integrity.prepare(self.path)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (BEGIN IMMEDIATE takes the write
        # lock up front, so two writers never deadlock halfway through).
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")   # WAL + NORMAL: durable at checkpoints, fast
        self._lock = threading.RLock()
        self._depth = 0
        self._hooks: list = []
        salvage_from = self.integrity.pop("salvage_from", None)
        if salvage_from:
            with self.transaction() as c:
                recovered, unreadable = integrity.salvage(salvage_from, c)
            self.integrity.update(recovered_rows=recovered, unreadable_rowids=unreadable)
            log.warning("state database recovered from %s: rows %s, unreadable %s", salvage_from,
                        recovered, unreadable or "none")
        cols = ", ".join(f'"{c}"' for c in DAILY_COLUMNS if c not in ("Date", "Battery_ID"))
        with self.transaction() as c:
            c.execute(f'CREATE TABLE IF NOT EXISTS daily ("Date" TEXT NOT NULL, "Battery_ID" NOT NULL, {cols}, '
                      'PRIMARY KEY ("Battery_ID", "Date"))')
            have = {r[1] for r in c.execute('PRAGMA table_info("daily")')}
            for col in DAILY_COLUMNS:
                if col not in have:          # a state dir from an older agent: columns added since
                    c.execute(f'ALTER TABLE daily ADD COLUMN "{col}"')
            c.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            c.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            if self.integrity["status"] != "ok":
                c.execute("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)",
                          (RECOVERY_KEY, json.dumps(self.integrity)))
            else:
                r = c.execute("SELECT value FROM kv WHERE key = ?", (RECOVERY_KEY,)).fetchone()
                if r:
                    self.integrity["last_recovery"] = json.loads(r[0])

    # ---- transactions ------------------------------------------------------------------
    @contextmanager
    def transaction(self):
        """Yield the sqlite3 connection inside BEGIN IMMEDIATE; commit on exit, roll back on error.
        Nested use in the same thread joins the outer transaction."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._depth = 0
                self._conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self._conn.execute("COMMIT")

    def add_row_hook(self, fn) -> None:
        """fn(conn, row) is called inside the transaction storing each NEW closed daily row."""
        self._hooks.append(fn)

    # ---- daily rows --------------------------------------------------------------------
    def store_daily_row(self, row: dict, checkpoint: dict | None = None, counters: dict | None = None) -> bool:
        """Insert one closed daily row (ignored if (battery, date) is already stored), run the row
        hooks for a new row, and save checkpoint/counters in the same transaction."""
        with self.transaction() as conn:
            cur = conn.execute(f"INSERT OR IGNORE INTO daily ({_COLS}) VALUES ({_QMARKS})",
                               [row.get(c) for c in DAILY_COLUMNS])
            new = cur.rowcount == 1
            if new:
                for fn in self._hooks:
                    # A failing hook must not lose the row: undo only what the hook wrote.
                    conn.execute("SAVEPOINT row_hook")
                    try:
                        fn(conn, dict(row))
                    except Exception:
                        conn.execute("ROLLBACK TO row_hook")
                        log.exception("row hook %r failed; row stored without it", fn)
                    conn.execute("RELEASE row_hook")
            if checkpoint is not None:
                self.save_checkpoint(checkpoint)
            if counters is not None:
                self.set_counters(counters)
        return new

    def history(self, battery_id=None) -> list[dict]:
        """Stored daily rows (keys = DAILY_COLUMNS), by date then battery; one battery if given."""
        q = f"SELECT {_COLS} FROM daily"
        args: tuple = ()
        if battery_id is not None:
            q += ' WHERE CAST("Battery_ID" AS TEXT) = ?'
            args = (str(battery_id),)
        q += ' ORDER BY "Date", "Battery_ID"'
        with self._lock:
            rows = self._conn.execute(q, args).fetchall()
        return [dict(zip(DAILY_COLUMNS, r)) for r in rows]

    def battery_ids(self) -> list:
        with self._lock:
            return [r[0] for r in self._conn.execute(
                'SELECT "Battery_ID" FROM daily GROUP BY "Battery_ID" ORDER BY MAX("Date")')]

    # ---- counters and checkpoint -------------------------------------------------------
    def counters(self) -> dict:
        with self._lock:
            return dict(self._conn.execute("SELECT name, value FROM counters ORDER BY name").fetchall())

    def set_counters(self, values: dict) -> None:
        with self.transaction() as conn:
            conn.executemany("INSERT INTO counters(name, value) VALUES (?, ?) "
                             "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                             [(k, int(v)) for k, v in values.items()])

    def save_checkpoint(self, state: dict, key: str = CHECKPOINT_KEY) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO kv(key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, json.dumps(state)))

    def load_checkpoint(self, key: str = CHECKPOINT_KEY) -> dict | None:
        with self._lock:
            r = self._conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return json.loads(r[0]) if r else None

    def close(self) -> None:
        with self._lock:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
