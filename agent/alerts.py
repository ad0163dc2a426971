"""Alert lifecycle, persisted in the state store's SQLite database.

An alert is identified by a stable `key` naming what it is about ("battery:<battery id>",
"compliance:<vin>:<component>", "incomplete:<vin>:<component>"), so re-evaluating the same condition updates the one
alert instead of raising a duplicate, and a restart (which re-evaluates) raises nothing.

States: raised -> updated (content changed) -> acknowledged (by the driver or the cloud)
-> cleared (condition gone). An acknowledged alert whose content changes stays
acknowledged (the driver is not nagged again) but its `updated` time and revision move.
A cleared alert whose condition comes back is raised again (same id, new revision).

Hooks:
  add_change_hook(fn(conn, alert))  called INSIDE the transaction of each change (the MQTT
                                    outbox enqueues there, so an alert change and its
                                    uplink message commit together or not at all)
  add_listener(fn(alert))           called after commit (HMI event stream, demo printout)
`alert["change"]` tells which transition happened: raised/updated/acknowledged/cleared.

The store only needs `.transaction()` yielding a sqlite3 connection (agent.store.StateStore).
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timezone

from agent.jsonsafe import finite, jsonable

log = logging.getLogger(__name__)

# compliance_incomplete: a component note that leaves a fact out (agent/components.py) — milder
# than a compliance alert: the part may be fine, the record is not.
KINDS = ("battery", "compliance", "compliance_incomplete")
SEVERITIES = ("info", "warning", "critical")
STATES = ("raised", "updated", "acknowledged", "cleared")
ACTIVE_STATES = ("raised", "updated", "acknowledged")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    key         TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    severity    TEXT NOT NULL,
    title       TEXT NOT NULL,
    message     TEXT NOT NULL,
    explanation TEXT NOT NULL,          -- JSON
    state       TEXT NOT NULL,
    created     TEXT NOT NULL,          -- UTC ISO 8601 (wall clock)
    updated     TEXT NOT NULL,
    acknowledged TEXT,
    acknowledged_by TEXT,
    cleared     TEXT,
    vehicle_date TEXT,                  -- vehicle-time date of the data behind the last change
    raised_vehicle_date TEXT,           -- vehicle-time date when (last) raised
    revision    INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state);
"""

_COLS = ("id", "key", "kind", "severity", "title", "message", "explanation", "state", "created",
         "updated", "acknowledged", "acknowledged_by", "cleared", "vehicle_date",
         "raised_vehicle_date", "revision")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class AlertError(ValueError):
    pass


class Alerts:
    def __init__(self, store, clock=utc_now):
        self.store = store
        self._clock = clock
        self._hooks: list = []
        self._listeners: list = []
        self._lock = threading.Lock()     # serialises read-modify-write of one alert
        with store.transaction() as conn:
            _create(conn)

    # -- hooks ------------------------------------------------------------------------
    def add_change_hook(self, fn) -> None:
        """fn(conn, alert) inside the transaction of each change; an exception aborts it."""
        self._hooks.append(fn)

    def add_listener(self, fn) -> None:
        """fn(alert) after commit; exceptions are logged, never propagated."""
        self._listeners.append(fn)

    # -- reads ------------------------------------------------------------------------
    def get(self, alert_id: int) -> dict | None:
        with self.store.transaction() as conn:
            row = conn.execute(f"SELECT {','.join(_COLS)} FROM alerts WHERE id=?", (int(alert_id),)).fetchone()
        return _to_dict(row) if row else None

    def get_by_key(self, key: str) -> dict | None:
        with self.store.transaction() as conn:
            row = conn.execute(f"SELECT {','.join(_COLS)} FROM alerts WHERE key=?", (key,)).fetchone()
        return _to_dict(row) if row else None

    def list(self, active_only: bool = False, kind: str | None = None, limit: int = 500) -> list[dict]:
        sql = f"SELECT {','.join(_COLS)} FROM alerts"
        where, args = [], []
        if active_only:
            where.append(f"state IN ({','.join('?' * len(ACTIVE_STATES))})")
            args += ACTIVE_STATES
        if kind:
            where.append("kind=?")
            args.append(kind)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY (state='cleared'), updated DESC, id DESC LIMIT ?"
        args.append(int(limit))
        with self.store.transaction() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [_to_dict(r) for r in rows]

    # -- transitions ------------------------------------------------------------------
    def raise_or_update(self, key: str, kind: str, severity: str, title: str, message: str,
                        explanation: dict, vehicle_date: str | None = None) -> tuple[dict, str | None]:
        """Raise the alert `key`, or update it if its content changed. Returns (alert,
        change) with change in raised/updated/None (None = already up to date)."""
        if kind not in KINDS:
            raise AlertError(f"unknown alert kind {kind!r}")
        if severity not in SEVERITIES:
            raise AlertError(f"unknown severity {severity!r}")
        expl = json.dumps(finite(explanation), sort_keys=True, separators=(",", ":"), default=jsonable)
        now = self._clock()
        with self._lock, self.store.transaction() as conn:
            row = conn.execute(f"SELECT {','.join(_COLS)} FROM alerts WHERE key=?", (key,)).fetchone()
            if row is None:
                cur = conn.execute(
                    "INSERT INTO alerts(key,kind,severity,title,message,explanation,state,created,updated,"
                    "vehicle_date,raised_vehicle_date) VALUES (?,?,?,?,?,?,'raised',?,?,?,?)",
                    (key, kind, severity, title, message, expl, now, now, vehicle_date, vehicle_date))
                change, alert_id = "raised", cur.lastrowid
            else:
                old = dict(zip(_COLS, row))
                if old["state"] == "cleared":
                    conn.execute(
                        "UPDATE alerts SET severity=?,title=?,message=?,explanation=?,state='raised',updated=?,"
                        "acknowledged=NULL,acknowledged_by=NULL,cleared=NULL,vehicle_date=?,raised_vehicle_date=?,"
                        "revision=revision+1 WHERE id=?",
                        (severity, title, message, expl, now, vehicle_date, vehicle_date, old["id"]))
                    change = "raised"
                elif (old["severity"], old["title"], old["message"], old["explanation"]) == (severity, title, message, expl):
                    return _to_dict(row), None
                else:
                    state = "acknowledged" if old["state"] == "acknowledged" else "updated"
                    conn.execute(
                        "UPDATE alerts SET severity=?,title=?,message=?,explanation=?,state=?,updated=?,"
                        "vehicle_date=?,revision=revision+1 WHERE id=?",
                        (severity, title, message, expl, state, now, vehicle_date, old["id"]))
                    change = "updated"
                alert_id = old["id"]
            alert = self._changed(conn, alert_id, change)
        self._notify(alert)
        return alert, change

    def acknowledge(self, alert_id: int, by: str = "driver") -> dict:
        """Acknowledge an active alert. Idempotent; raises KeyError if unknown and
        AlertError if it is already cleared."""
        with self._lock, self.store.transaction() as conn:
            row = conn.execute("SELECT state FROM alerts WHERE id=?", (int(alert_id),)).fetchone()
            if row is None:
                raise KeyError(alert_id)
            if row[0] == "cleared":
                raise AlertError(f"alert {alert_id} is cleared")
            if row[0] == "acknowledged":
                return _to_dict(conn.execute(f"SELECT {','.join(_COLS)} FROM alerts WHERE id=?",
                                             (int(alert_id),)).fetchone())
            now = self._clock()
            conn.execute("UPDATE alerts SET state='acknowledged',acknowledged=?,acknowledged_by=?,updated=?,"
                         "revision=revision+1 WHERE id=?", (now, str(by)[:64], now, int(alert_id)))
            alert = self._changed(conn, int(alert_id), "acknowledged")
        self._notify(alert)
        return alert

    def clear(self, key: str, vehicle_date: str | None = None) -> dict | None:
        """Clear the active alert `key` (condition gone). None if there was nothing to clear."""
        with self._lock, self.store.transaction() as conn:
            row = conn.execute("SELECT id,state FROM alerts WHERE key=?", (key,)).fetchone()
            if row is None or row[1] == "cleared":
                return None
            now = self._clock()
            conn.execute("UPDATE alerts SET state='cleared',cleared=?,updated=?,vehicle_date=COALESCE(?,vehicle_date),"
                         "revision=revision+1 WHERE id=?", (now, now, vehicle_date, row[0]))
            alert = self._changed(conn, row[0], "cleared")
        self._notify(alert)
        return alert

    def clear_where(self, kind: str, key_prefix: str = "", keep: str | None = None,
                    vehicle_date: str | None = None) -> list[dict]:
        """Clear every active alert of `kind` whose key starts with key_prefix, except `keep`."""
        with self.store.transaction() as conn:
            keys = [k for (k,) in conn.execute(
                f"SELECT key FROM alerts WHERE kind=? AND state IN ({','.join('?' * len(ACTIVE_STATES))})",
                (kind, *ACTIVE_STATES)) if k.startswith(key_prefix) and k != keep]
        return [a for a in (self.clear(k, vehicle_date) for k in keys) if a]

    # -- internals --------------------------------------------------------------------
    def _changed(self, conn, alert_id: int, change: str) -> dict:
        alert = _to_dict(conn.execute(f"SELECT {','.join(_COLS)} FROM alerts WHERE id=?", (alert_id,)).fetchone())
        alert["change"] = change
        for fn in self._hooks:
            fn(conn, alert)
        return alert

    def _notify(self, alert: dict) -> None:
        # An active battery alert is refreshed every closed day: lifecycle changes at INFO,
        # the daily refresh at DEBUG (state, MQTT and HMI still get every update).
        log.log(logging.DEBUG if alert["change"] == "updated" else logging.INFO,
                "alert %s %s [%s] %s", alert["id"], alert["change"], alert["kind"], alert["title"])
        for fn in self._listeners:
            try:
                fn(alert)
            except Exception:  # a listener (HMI, printout) must never break the data path
                log.exception("alert listener failed")


def _create(conn) -> None:
    # executescript() would COMMIT the store's open transaction; run statements one by one.
    for stmt in _SCHEMA.split(";"):
        if stmt.strip():
            conn.execute(stmt)


def _to_dict(row) -> dict:
    d = dict(zip(_COLS, row))
    try:
        d["explanation"] = json.loads(d["explanation"])
    except (TypeError, ValueError):
        d["explanation"] = {}
    return d


