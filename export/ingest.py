"""Cloud ingest: the fleet's MQTT uplink -> a deduplicated dataset for retraining.

    trey-export ingest --broker HOST:PORT --out DIR [--worker-id ID] [--group ingest]

On-disk layout of DIR (what `trey-export train battery` reads as training data):

    DIR/daily/date=YYYY-MM-DD/part-<worker>.csv    daily rows: agent.schema.DAILY_COLUMNS + vehicle_id
    DIR/alerts/date=YYYY-MM-DD/part-<worker>.csv   alert changes (ALERT_COLUMNS below), date = day of `updated`
    DIR/_ingest.sqlite                             dedup ledger (msg_id), committed file lengths,
                                                   latest status per vehicle (not part of the dataset)

Read it with `read_daily(DIR)` (pandas DataFrame, seed column names + vehicle_id) or glob
`DIR/daily/date=*/*.csv` — every file has a header row; empty cells are unknown values.

Why CSV (not Parquet): the retraining side already reads seed-schema CSV with exactly these
column names (same loader, same cleaning function), and CSV can be *appended* row by row, so
a batch becomes durable with one fsync and a crash is repaired by truncating to the committed
length. Parquet files are immutable: streaming a few hundred bytes per car per day into them
means a new tiny file per batch plus a compaction job. At fleet scale, a nightly job can
convert closed date partitions to Parquet without changing this layout (hive-style `date=`).

Exactly once: MQTT QoS 1 is at-least-once, and the agent re-sends everything not yet
PUBACKed after a restart. Each batch is written under the ledger's write lock
(BEGIN IMMEDIATE, shared by all workers on the same DIR): skip msg_ids already in the ledger,
append to the CSV files, fsync, record msg_ids + new file lengths, COMMIT — and only then
PUBACK the messages to the broker (paho manual_ack). A crash before COMMIT leaves bytes past
the recorded length: they are truncated at the next start, and the broker redelivers the
un-acknowledged messages. Several workers (MQTT 5 shared subscription `$share/<group>/...`)
split the load; each writes its own part files and a stable --worker-id keeps its session.
SIGTERM: stop taking messages, write + ack what was received, disconnect.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import sqlite3
import threading
import time
from pathlib import Path

from agent import topics as T
from agent.schema import DAILY_COLUMNS

log = logging.getLogger("export.ingest")

DAILY_DIR = "daily"
ALERTS_DIR = "alerts"
LEDGER = "_ingest.sqlite"
DAILY_OUT_COLUMNS = DAILY_COLUMNS + ("vehicle_id",)
DEDUP_DAYS = 400.0        # how long a msg_id is remembered for deduplication (see DatasetWriter.prune)
ALERT_COLUMNS = ("msg_id", "vehicle_id", "change", "alert_id", "key", "kind", "severity", "state", "title",
                 "message", "created", "updated", "acknowledged", "acknowledged_by", "cleared",
                 "vehicle_date", "raised_vehicle_date", "revision", "explanation")

_LEDGER_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS seen (msg_id TEXT PRIMARY KEY, kind TEXT NOT NULL, vehicle_id TEXT NOT NULL,"
    " worker TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS seen_at ON seen(at)",
    "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, length INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS vehicle_status (vehicle_id TEXT PRIMARY KEY, state TEXT, at TEXT,"
    " payload TEXT NOT NULL, received REAL NOT NULL)",
)


def _ledger(out: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(out / LEDGER, timeout=30, isolation_level=None, check_same_thread=False)
    # Workers started together on a new dataset race to switch it to WAL; SQLite answers the
    # loser "database is locked" at once (no busy wait for this pragma), so wait here instead.
    deadline = time.monotonic() + 30
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("BEGIN IMMEDIATE")
    for stmt in _LEDGER_SCHEMA:
        conn.execute(stmt)
    conn.execute("COMMIT")
    return conn


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True, separators=(",", ":"))
    return v


class DatasetWriter:
    """Appends deduplicated batches to the partitioned CSV dataset (see module docstring)."""

    PRUNE_EVERY_S = 3600.0

    def __init__(self, out_dir: str | Path, worker: str, dedup_days: float = DEDUP_DAYS):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.worker = worker
        self.dedup_days = dedup_days
        self.db = _ledger(self.out)
        self.written = {"daily": 0, "alert": 0, "status": 0}
        self.duplicates = 0
        self.pruned = 0
        self._pruned_at = 0.0
        self.recover()
        self.prune()

    def prune(self, now: float | None = None) -> int:
        """Forget msg_ids recorded more than dedup_days ago (0 = keep all), so the ledger stays
        bounded. A re-delivery comes from a car whose PUBACK was lost; it re-sends on its next
        connection, so the retention only has to outlast the longest time a car stays offline
        (its outbox, bounded, drops old telemetry first anyway)."""
        now = time.time() if now is None else now
        self._pruned_at = now
        if not self.dedup_days or self.dedup_days <= 0:
            return 0
        n = self.db.execute("DELETE FROM seen WHERE at < ?", (now - self.dedup_days * 86400.0,)).rowcount
        if n:
            self.pruned += n
            log.info("ingest ledger: forgot %d msg_ids older than %g days", n, self.dedup_days)
        return n

    def recover(self) -> int:
        """Truncate bytes written after the last commit (a crash mid-batch); returns bytes cut."""
        cut = 0
        self.db.execute("BEGIN IMMEDIATE")
        try:
            known = dict(self.db.execute("SELECT path, length FROM files").fetchall())
            for sub in (DAILY_DIR, ALERTS_DIR):
                for f in sorted((self.out / sub).glob("date=*/part-*.csv")):
                    rel = str(f.relative_to(self.out))
                    length = known.get(rel, 0)
                    size = f.stat().st_size
                    if size > length:
                        with open(f, "r+b") as fh:
                            fh.truncate(length)
                            fh.flush()
                            os.fsync(fh.fileno())
                        cut += size - length
                        log.warning("recovered %s: cut %d uncommitted bytes", rel, size - length)
        finally:
            self.db.execute("COMMIT")
        return cut

    def write(self, batch: list[tuple[str, str, dict]]) -> int:
        """batch = [(kind, vehicle_id, payload)]; durable when this returns. Returns rows written."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            fresh, ids = [], set()
            for kind, vid, obj in batch:
                mid = obj["msg_id"]
                if mid in ids or db.execute("SELECT 1 FROM seen WHERE msg_id=?", (mid,)).fetchone():
                    self.duplicates += 1
                    continue
                ids.add(mid)
                fresh.append((kind, vid, obj))
            by_file: dict[str, list] = {}
            for kind, vid, obj in fresh:
                if kind == "daily":
                    row = obj["row"]
                    rel = f"{DAILY_DIR}/date={row['Date']}/part-{self.worker}.csv"
                    by_file.setdefault(rel, []).append([_cell(row.get(c)) for c in DAILY_COLUMNS] + [vid])
                elif kind == "alert":
                    a = obj["alert"]
                    rec = {"msg_id": obj["msg_id"], "vehicle_id": vid, "change": obj["change"], "alert_id": a["id"],
                           **{k: a.get(k) for k in ALERT_COLUMNS if k in a}}
                    rel = f"{ALERTS_DIR}/date={str(a['updated'])[:10]}/part-{self.worker}.csv"
                    by_file.setdefault(rel, []).append([_cell(rec.get(c)) for c in ALERT_COLUMNS])
                else:
                    db.execute("INSERT INTO vehicle_status(vehicle_id,state,at,payload,received) VALUES (?,?,?,?,?) "
                               "ON CONFLICT(vehicle_id) DO UPDATE SET state=excluded.state,at=excluded.at,"
                               "payload=excluded.payload,received=excluded.received",
                               (vid, obj.get("state"), str(obj.get("at")), json.dumps(obj), time.time()))
            lengths = {}
            for rel, rows in by_file.items():
                lengths[rel] = self._append(rel, rows)
            for rel, length in lengths.items():
                db.execute("INSERT INTO files(path,length) VALUES (?,?) ON CONFLICT(path) DO UPDATE SET "
                           "length=excluded.length", (rel, length))
            now = time.time()
            db.executemany("INSERT INTO seen(msg_id,kind,vehicle_id,worker,at) VALUES (?,?,?,?,?)",
                           [(o["msg_id"], k, v, self.worker, now) for k, v, o in fresh])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        for kind, _, _ in fresh:
            self.written[kind] += 1
        if time.time() - self._pruned_at >= self.PRUNE_EVERY_S:
            self.prune()
        return len(fresh)

    def _append(self, rel: str, rows: list[list]) -> int:
        path = self.out / rel
        new = not path.exists()
        new_dir = new and not path.parent.exists()
        if new:
            path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if new or path.stat().st_size == 0:
            w.writerow(DAILY_OUT_COLUMNS if rel.startswith(DAILY_DIR) else ALERT_COLUMNS)
        w.writerows(rows)
        with open(path, "ab") as fh:
            fh.write(buf.getvalue().encode())
            fh.flush()
            os.fdatasync(fh.fileno())
            length = fh.tell()
        if new:                      # the new file's (and partition's) directory entries too
            _fsync_dir(path.parent)
        if new_dir:
            _fsync_dir(path.parent.parent)
        return length

    def close(self) -> None:
        self.db.close()


class IngestWorker:
    """One ingest worker: MQTT 5 shared subscription -> DatasetWriter, manual PUBACK after commit."""

    def __init__(self, host: str, port: int, out_dir: str | Path, worker_id: str = "1", group: str = "ingest",
                 batch_max: int = 500, flush_s: float = 0.2, session_expiry: int = 3600,
                 tls_ca: str = "", tls_cert: str = "", tls_key: str = "", username: str = "", password: str = "",
                 dedup_days: float = DEDUP_DAYS):
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", worker_id):
            raise ValueError(f"worker id {worker_id!r}: 1-32 of [A-Za-z0-9_-]")
        self.host, self.port = host, int(port)
        self.worker_id = worker_id
        self.group = group
        self.batch_max, self.flush_s = batch_max, flush_s
        self.session_expiry = session_expiry
        self.writer = DatasetWriter(out_dir, worker_id, dedup_days)
        self._tls = (tls_ca, tls_cert, tls_key)
        self._auth = (username, password)
        self._pending: list[tuple[int, int, str, str, dict]] = []   # (mid, qos, kind, vid, obj)
        self._pending_since = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = False
        self.received = 0
        self.write_errors = 0
        self.rejected: dict[str, int] = {}
        self.client = self._make_client()

    def _make_client(self):
        import paho.mqtt.client as mqtt
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"trey-ingest-{self.group}-{self.worker_id}",
                        protocol=mqtt.MQTTv5, manual_ack=True)
        if self._auth[0]:
            c.username_pw_set(*self._auth)
        if any(self._tls):
            c.tls_set(ca_certs=self._tls[0] or None, certfile=self._tls[1] or None, keyfile=self._tls[2] or None)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        return c

    # ---------------------------------------------------------------- callbacks (loop thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.error("ingest: broker refused the connection: %s", reason_code)
            return
        self.connected = True
        client.subscribe([(T.shared(f, self.group), T.QOS) for f in T.INGEST_FILTERS])
        log.info("ingest worker %s connected to %s:%s (session present: %s)", self.worker_id, self.host,
                 self.port, flags.session_present)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected = False

    def _on_message(self, client, userdata, message):
        self.received += 1
        try:
            kind, vid, obj = T.decode_uplink(message.topic, message.payload)
        except T.PayloadError as exc:
            if exc.reason not in self.rejected:
                log.warning("ingest: rejected message on %s (%s) — further ones counted silently",
                            message.topic[:100], exc.reason)
            self.rejected[exc.reason] = self.rejected.get(exc.reason, 0) + 1
            client.ack(message.mid, message.qos)     # never useful to redeliver garbage
            return
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append((message.mid, message.qos, kind, vid, obj))

    # ---------------------------------------------------------------- batching
    def flush(self) -> int:
        if not self._pending:
            return 0
        batch = self._pending
        n = self.writer.write([(k, v, o) for _, _, k, v, o in batch])
        self._pending = []
        for mid, qos, *_ in batch:          # durable now: only then acknowledge
            if qos > 0:
                self.client.ack(mid, qos)
        return n

    def _safe_flush(self) -> bool:
        """flush(); on a write failure nothing is acked: drop the batch and reconnect so the
        broker redelivers it (persistent session) once the disk/ledger is usable again."""
        try:
            self.flush()
            return True
        except Exception:
            log.exception("ingest: write failed; %d messages left un-acknowledged for redelivery",
                          len(self._pending))
            self._pending = []
            self.write_errors += 1
            try:
                self.client.disconnect()
            except Exception:
                pass
            self._stop.wait(1.0)
            return False

    def run(self) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry
        props.ReceiveMaximum = max(1, min(self.batch_max, 65535))   # un-acked messages the broker may send
        delay = 0.2
        while not self._stop.is_set():
            try:
                self.client.connect(self.host, self.port, 30, clean_start=False, properties=props)
            except Exception as exc:
                log.warning("ingest: cannot connect to %s:%s: %s", self.host, self.port, exc)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            while not self._stop.is_set():
                before = self.received
                rc = self.client.loop(timeout=0.05)
                # Write a batch as soon as the broker pauses (it only sends up to its in-flight
                # window of un-acked messages, so waiting longer would not grow the batch).
                if self._pending and (len(self._pending) >= self.batch_max or self.received == before
                                      or time.monotonic() - self._pending_since >= self.flush_s):
                    if not self._safe_flush():
                        break
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    break
            # Received-but-unacked messages: writing them is safe (dedup makes a redelivery harmless).
            self._safe_flush()
            if self._stop.is_set():
                try:
                    self.client.loop(timeout=0.1)     # push the last PUBACKs out
                    self.client.disconnect()
                    self.client.loop(timeout=0.1)
                except Exception:
                    pass
                break
            self.connected = False
            self._stop.wait(delay)
        self.writer.close()

    def start(self) -> "IngestWorker":
        self._thread = threading.Thread(target=self.run, name=f"ingest-{self.worker_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def stats(self) -> dict:
        return {"worker": self.worker_id, "received": self.received, "written": dict(self.writer.written),
                "duplicates": self.writer.duplicates, "ledger_pruned": self.writer.pruned,
                "rejected": dict(self.rejected),
                "write_errors": self.write_errors}


# ---------------------------------------------------------------------------- readers
def daily_files(out_dir: str | Path) -> list[Path]:
    return sorted(Path(out_dir).glob(f"{DAILY_DIR}/date=*/part-*.csv"))


def alert_files(out_dir: str | Path) -> list[Path]:
    return sorted(Path(out_dir).glob(f"{ALERTS_DIR}/date=*/part-*.csv"))


def read_daily(out_dir: str | Path):
    """All ingested daily rows as a DataFrame (DAILY_COLUMNS + vehicle_id), sorted by
    vehicle_id, Battery_ID, Date. Empty (with the columns) if nothing was ingested."""
    import pandas as pd
    frames = [pd.read_csv(f, dtype={"Battery_ID": str, "vehicle_id": str}) for f in daily_files(out_dir)]
    if not frames:
        return pd.DataFrame(columns=list(DAILY_OUT_COLUMNS))
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values(["vehicle_id", "Battery_ID", "Date"], kind="stable").reset_index(drop=True)


def read_alerts(out_dir: str | Path):
    import pandas as pd
    frames = [pd.read_csv(f, dtype={"vehicle_id": str, "key": str}) for f in alert_files(out_dir)]
    if not frames:
        return pd.DataFrame(columns=list(ALERT_COLUMNS))
    return pd.concat(frames, ignore_index=True)
