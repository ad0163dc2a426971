"""The MQTT outbox: messages waiting for the broker's PUBACK, in the agent's state DB.

Why here: a message is written in the SAME transaction as the state change that produced it
(`enqueue(conn, ...)` is called from StateStore.add_row_hook / Alerts.add_change_hook), so a
daily row or alert change and its uplink message commit together or not at all — SIGKILL,
power loss or a dead network can't separate them. Rows are deleted only once the broker
acknowledged them (agent.sync), and drained oldest first.

Bounds (config mqtt.outbox_max_rows / outbox_max_bytes): when an enqueue would exceed them,
the oldest telemetry is dropped first, alerts only when no telemetry is left. Rows that are
in flight (published, PUBACK pending) are never dropped: they will arrive. Every drop is
counted in `outbox_meta`, in the same transaction, so the counters survive restarts and match
exactly what was dropped; agent.sync reports them on the status topic.
"""

from __future__ import annotations

import time

from agent.topics import KIND_ALERT, KIND_TELEMETRY, encode

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS outbox (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        kind     TEXT NOT NULL,          -- telemetry | alert (drop priority)
        topic    TEXT NOT NULL,
        payload  BLOB NOT NULL,
        msg_id   TEXT NOT NULL,
        bytes    INTEGER NOT NULL,
        created  REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS outbox_kind ON outbox(kind, id)",
    # Running totals kept in the same transactions as inserts/deletes: O(1) bound checks.
    """CREATE TABLE IF NOT EXISTS outbox_meta (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    )""",
)
COUNTERS = ("rows", "bytes", "enqueued", "sent", "dropped_telemetry", "dropped_alerts",
            "dropped_bytes")


def create(conn) -> None:
    """Create the tables (idempotent); call inside a StateStore transaction."""
    for stmt in _SCHEMA:
        conn.execute(stmt)
    for name in COUNTERS:
        conn.execute("INSERT OR IGNORE INTO outbox_meta(name, value) VALUES (?, 0)", (name,))
    # Repair totals if the table was touched outside this module (cheap, once at start).
    rows, nbytes = conn.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM outbox").fetchone()
    conn.execute("UPDATE outbox_meta SET value=? WHERE name='rows'", (rows,))
    conn.execute("UPDATE outbox_meta SET value=? WHERE name='bytes'", (nbytes,))


def _add(conn, name: str, delta: int) -> None:
    conn.execute("UPDATE outbox_meta SET value=value+? WHERE name=?", (delta, name))


def enqueue(conn, kind: str, topic: str, payload: dict, max_rows: int, max_bytes: int,
            protect=()) -> int:
    """Insert one message (inside the caller's transaction) and enforce the bounds.

    `protect` = ids currently in flight (never dropped). Returns the new row id."""
    if kind not in (KIND_TELEMETRY, KIND_ALERT):
        raise ValueError(f"unknown outbox kind {kind!r}")
    data = encode(payload)
    cur = conn.execute("INSERT INTO outbox(kind, topic, payload, msg_id, bytes, created) VALUES (?,?,?,?,?,?)",
                       (kind, topic, data, payload["msg_id"], len(data), time.time()))
    new_id = cur.lastrowid
    _add(conn, "rows", 1)
    _add(conn, "bytes", len(data))
    _add(conn, "enqueued", 1)
    _enforce(conn, max_rows, max_bytes, set(protect) | {new_id})
    return new_id


def _totals(conn) -> tuple[int, int]:
    m = dict(conn.execute("SELECT name, value FROM outbox_meta WHERE name IN ('rows','bytes')").fetchall())
    return m.get("rows", 0), m.get("bytes", 0)


def _enforce(conn, max_rows: int, max_bytes: int, protect: set) -> None:
    rows, nbytes = _totals(conn)
    if rows <= max_rows and nbytes <= max_bytes:
        return
    for kind, counter in ((KIND_TELEMETRY, "dropped_telemetry"), (KIND_ALERT, "dropped_alerts")):
        # Oldest first, a small batch at a time (usually one row per enqueue).
        while rows > max_rows or nbytes > max_bytes:
            victims = [(i, b) for i, b in conn.execute(
                "SELECT id, bytes FROM outbox WHERE kind=? ORDER BY id LIMIT ?", (kind, len(protect) + 16))
                if i not in protect]
            if not victims:
                break
            for vid, vbytes in victims:
                if rows <= max_rows and nbytes <= max_bytes:
                    break
                conn.execute("DELETE FROM outbox WHERE id=?", (vid,))
                rows, nbytes = rows - 1, nbytes - vbytes
                _add(conn, counter, 1)
                _add(conn, "dropped_bytes", vbytes)
                _add(conn, "rows", -1)
                _add(conn, "bytes", -vbytes)


def pending(conn, after_id: int = 0, limit: int = 100, exclude=()) -> list[tuple[int, str, bytes]]:
    """Oldest-first (id, topic, payload) with id > after_id, skipping `exclude` ids."""
    ex = set(exclude)
    out = []
    for rid, topic, payload in conn.execute(
            "SELECT id, topic, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit + len(ex))):
        if rid not in ex:
            out.append((rid, topic, bytes(payload)))
            if len(out) >= limit:
                break
    return out


def delete(conn, ids) -> int:
    """Delete acknowledged rows; returns how many existed (a dropped row may be gone)."""
    n, nbytes = 0, 0
    for rid in ids:
        row = conn.execute("SELECT bytes FROM outbox WHERE id=?", (rid,)).fetchone()
        if row is None:
            continue
        conn.execute("DELETE FROM outbox WHERE id=?", (rid,))
        n, nbytes = n + 1, nbytes + row[0]
    if n:
        _add(conn, "rows", -n)
        _add(conn, "bytes", -nbytes)
        _add(conn, "sent", n)
    return n


def counters(conn) -> dict:
    """Current totals and drop counters (rows, bytes, enqueued, sent, dropped_*)."""
    m = dict(conn.execute("SELECT name, value FROM outbox_meta").fetchall())
    return {name: int(m.get(name, 0)) for name in COUNTERS}
