"""Cloud ingest: the fleet's MQTT uplink -> immutable Parquet files in the lake's landing/.

    trey-export ingest --broker HOST:PORT --lake URI [--worker-id ID] [--group ingest]

Stateless workers (docs/lake.md): each worker writes its own files

    LAKE/landing/date=YYYY-MM-DD/part-<worker>-<uuid>.parquet   (date = UTC day received)

with the validated payload verbatim (schema export.lake.tables.SCHEMAS["landing"]). A file is
written completely under a hidden temporary name, fsynced and renamed into place, and only
then are its messages PUBACKed to the broker (paho manual_ack). There is no ledger and no
lock: workers on different machines share nothing but the lake and the broker's shared
subscription (`$share/<group>/...`, MQTT 5), so a crash can only leave a hidden temporary
file (ignored by every reader, removed at the next start) and un-acked messages, which the
broker redelivers. Delivery is at-least-once here; `trey-export lake compact` makes it
exactly-once by msg_id when it builds the curated tables. A stable --worker-id keeps the
worker's broker session across restarts. SIGTERM: stop taking messages, write + ack what
was received, disconnect.

Read the curated daily rows with `read_daily(LAKE)` (pandas; seed column names + vehicle_id,
msg_id, received_at). Datasets written by the old CSV layout (daily/date=*/part-*.csv + a
SQLite ledger) are still read by read_daily/read_alerts and can be moved into a lake with
`trey-export lake migrate` (export/lake/legacy.py).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import threading
import time
import uuid
from pathlib import Path

from agent import topics as T
from export.lake import tables as LT

log = logging.getLogger("export.ingest")

LANDING_DIR = LT.LANDING
TMP_PREFIX = ".tmp-"          # hidden: Spark, DuckDB and pyarrow readers skip dot-files


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _local(lake: str | Path) -> Path | None:
    s = str(lake)
    if s.startswith("file://"):
        return Path(s[len("file://"):])
    return None if "://" in s else Path(s)


class LandingWriter:
    """Writes batches of validated uplink messages as immutable landing files (one per UTC day
    of receipt in the batch). Durable when write() returns."""

    def __init__(self, lake: str | Path, worker: str):
        self.lake = str(lake)
        self.worker = worker
        self.written = {"daily": 0, "alert": 0, "status": 0}
        self.files = 0
        self._root = _local(lake)
        if self._root is not None:
            (self._root / LANDING_DIR).mkdir(parents=True, exist_ok=True)
            self._sweep()
        else:
            import pyarrow.fs as pafs
            self._fs, self._base = pafs.FileSystem.from_uri(self.lake)

    def _sweep(self) -> None:
        """Remove this worker's temporary files of a crash (never acknowledged, so redelivered)."""
        for f in (self._root / LANDING_DIR).glob(f"date=*/{TMP_PREFIX}part-{self.worker}-*"):
            log.warning("ingest: removing unfinished landing file %s", f.name)
            f.unlink(missing_ok=True)

    def write(self, batch: list[tuple[str, str, str, str, float]]) -> int:
        """batch = [(kind, vehicle_id, topic, payload JSON text, received epoch s)] -> rows written."""
        import pyarrow as pa
        by_day: dict[str, list] = {}
        for item in batch:
            day = dt.datetime.fromtimestamp(item[4], dt.timezone.utc).date().isoformat()
            by_day.setdefault(day, []).append(item)
        for day, items in sorted(by_day.items()):
            cols = {
                "msg_id": [json.loads(p)["msg_id"] for _, _, _, p, _ in items],
                "kind": [k for k, *_ in items], "vehicle_id": [v for _, v, *_ in items],
                "topic": [t for _, _, t, _, _ in items],
                "received_at": [dt.datetime.fromtimestamp(r, dt.timezone.utc) for *_, r in items],
                "worker": [self.worker] * len(items), "payload": [p for _, _, _, p, _ in items]}
            self._write_file(day, pa.Table.from_pydict(cols, schema=LT.SCHEMAS[LT.LANDING]))
        for kind, *_ in batch:
            self.written[kind] += 1
        return len(batch)

    def _write_file(self, day: str, table) -> None:
        import pyarrow.parquet as pq
        name = f"part-{self.worker}-{uuid.uuid4().hex}.parquet"
        if self._root is None:      # object store: a PUT appears whole or not at all
            part = f"{self._base.rstrip('/')}/{LANDING_DIR}/date={day}"
            self._fs.create_dir(part, recursive=True)
            pq.write_table(table, f"{part}/{name}", filesystem=self._fs)
            self.files += 1
            return
        part = self._root / LANDING_DIR / f"date={day}"
        new_dir = not part.is_dir()
        part.mkdir(parents=True, exist_ok=True)
        tmp = part / (TMP_PREFIX + name)
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, part / name)
        _fsync_dir(part)
        if new_dir:
            _fsync_dir(part.parent)
        self.files += 1

    def close(self) -> None:
        pass


class IngestWorker:
    """One ingest worker: MQTT 5 shared subscription -> LandingWriter, manual PUBACK after the
    file is in place."""

    def __init__(self, host: str, port: int, lake: str | Path, worker_id: str = "1", group: str = "ingest",
                 batch_max: int = 500, flush_s: float = 0.2, session_expiry: int = 3600,
                 tls_ca: str = "", tls_cert: str = "", tls_key: str = "", username: str = "", password: str = ""):
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", worker_id):
            raise ValueError(f"worker id {worker_id!r}: 1-32 of [A-Za-z0-9_-]")
        self.host, self.port = host, int(port)
        self.worker_id = worker_id
        self.group = group
        self.batch_max, self.flush_s = batch_max, flush_s
        self.session_expiry = session_expiry
        self.writer = LandingWriter(lake, worker_id)
        self._tls = (tls_ca, tls_cert, tls_key)
        self._auth = (username, password)
        self._pending: list[tuple[int, int, tuple]] = []   # (mid, qos, (kind, vid, topic, payload, received))
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
        self._pending.append((message.mid, message.qos,
                              (kind, vid, message.topic, bytes(message.payload).decode("utf-8"), time.time())))

    # ---------------------------------------------------------------- batching
    def flush(self) -> int:
        if not self._pending:
            return 0
        batch = self._pending
        n = self.writer.write([item for _, _, item in batch])
        self._pending = []
        for mid, qos, _ in batch:           # durable now: only then acknowledge
            if qos > 0:
                self.client.ack(mid, qos)
        return n

    def _safe_flush(self) -> bool:
        """flush(); on a write failure nothing is acked: drop the batch and reconnect so the
        broker redelivers it (persistent session) once the lake is writable again."""
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
            # Received-but-unacked messages: writing them is safe (compaction drops a redelivery).
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
                "files": self.writer.files,
                "rejected": dict(self.rejected),
                "write_errors": self.write_errors}


# ---------------------------------------------------------------------------- readers
def landing_files(lake: str | Path) -> list[Path]:
    return sorted(Path(lake).glob(f"{LANDING_DIR}/date=*/part-*.parquet"))


def read_landing(lake: str | Path):
    """Every landed message (pandas; duplicates included: this is what the workers wrote)."""
    return _read_table(lake, LT.LANDING)


def _read_table(lake, name: str):
    import pyarrow.dataset as ds
    root = Path(_local(lake) or lake) / name
    files = sorted(str(f) for f in root.glob("date=*/*.parquet") if f.name[0] not in "._") if root.is_dir() else []
    if not files:
        return LT.SCHEMAS[name].empty_table().to_pandas()
    return ds.dataset(files, schema=LT.SCHEMAS[name], format="parquet").to_table().to_pandas()


def _is_legacy(path) -> bool:
    from export.lake.legacy import is_legacy
    return is_legacy(path)


def read_daily(lake: str | Path):
    """The curated daily table (after `trey-export lake compact`) as a DataFrame: seed column
    names + vehicle_id, msg_id, received_at; Date as YYYY-MM-DD text, as the CSV loaders and
    agent cleaning take it; sorted by vehicle_id, Battery_ID, Date. An old CSV dataset is read
    by the legacy reader. Empty (with the columns) if nothing is there."""
    if _is_legacy(lake):
        from export.lake.legacy import read_legacy_daily
        return read_legacy_daily(lake)
    df = _read_table(lake, LT.DAILY)
    df["Date"] = df["Date"].astype(str)
    return df.sort_values(["vehicle_id", "Battery_ID", "Date"], kind="stable").reset_index(drop=True)


def read_alerts(lake: str | Path):
    """The curated alerts table (one row per alert change)."""
    if _is_legacy(lake):
        from export.lake.legacy import read_legacy_alerts
        return read_legacy_alerts(lake)
    return _read_table(lake, LT.ALERTS)


def read_status(lake: str | Path):
    return _read_table(lake, LT.STATUS)
