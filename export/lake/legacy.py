"""Datasets of the old CSV ingest layout (before the lake):

    DIR/daily/date=D/part-<worker>.csv    agent.schema.DAILY_COLUMNS + vehicle_id (no msg_id)
    DIR/alerts/date=D/part-<worker>.csv   LEGACY_ALERT_COLUMNS
    DIR/_ingest.sqlite                    msg_id ledger + latest status per vehicle

read_legacy_daily / read_legacy_alerts read them as they were; migrate() turns them into
landing files of a lake (payloads as the car sent them), so the next `lake compact` puts them
into the curated tables. Migrating twice is harmless: each row gets a msg_id derived from its
file and line (the old dataset was deduplicated already, so every line is one message)."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path

from agent.schema import DAILY_COLUMNS
from agent import topics as T

LEGACY_LEDGER = "_ingest.sqlite"
LEGACY_DAILY_COLUMNS = DAILY_COLUMNS + ("vehicle_id",)
LEGACY_ALERT_COLUMNS = ("msg_id", "vehicle_id", "change", "alert_id", "key", "kind", "severity", "state", "title",
                        "message", "created", "updated", "acknowledged", "acknowledged_by", "cleared",
                        "vehicle_date", "raised_vehicle_date", "revision", "explanation")
_NS = uuid.UUID("6f1d3c1e-8d0b-4c39-9a52-2d1c0c6b7a10")


def is_legacy(path) -> bool:
    p = Path(str(path).removeprefix("file://"))
    return (p / LEGACY_LEDGER).is_file() or any(p.glob("daily/date=*/part-*.csv"))


def _files(path, sub):
    return sorted(Path(str(path).removeprefix("file://")).glob(f"{sub}/date=*/part-*.csv"))


def read_legacy_daily(path):
    import pandas as pd
    frames = [pd.read_csv(f, dtype={"Battery_ID": str, "vehicle_id": str}) for f in _files(path, "daily")]
    if not frames:
        return pd.DataFrame(columns=list(LEGACY_DAILY_COLUMNS))
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values(["vehicle_id", "Battery_ID", "Date"], kind="stable").reset_index(drop=True)


def read_legacy_alerts(path):
    import pandas as pd
    frames = [pd.read_csv(f, dtype={"vehicle_id": str, "key": str}) for f in _files(path, "alerts")]
    if not frames:
        return pd.DataFrame(columns=list(LEGACY_ALERT_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def _value(text: str):
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def legacy_messages(path):
    """-> (kind, vehicle_id, topic, payload JSON) for every row of the old dataset."""
    import csv
    root = Path(str(path).removeprefix("file://"))
    for f in _files(root, "daily"):
        rel = str(f.relative_to(root))
        with open(f, newline="", encoding="utf-8") as fh:
            for line, rec in enumerate(csv.DictReader(fh), start=2):
                vid = rec["vehicle_id"]
                row = {c: _value(rec.get(c, "")) for c in DAILY_COLUMNS}
                row["Date"], row["Battery_ID"] = rec["Date"], rec["Battery_ID"]
                mid = uuid.uuid5(_NS, f"{rel}:{line}").hex
                yield "daily", vid, T.daily_topic(vid), json.dumps(T.daily_payload(vid, row, msg_id=mid))
    for f in _files(root, "alerts"):
        with open(f, newline="", encoding="utf-8") as fh:
            for rec in csv.DictReader(fh):
                vid = rec["vehicle_id"]
                alert = {k: (rec.get(k) or None) for k in T.ALERT_FIELDS}
                alert["id"] = int(float(rec["alert_id"]))
                alert["revision"] = int(float(rec["revision"])) if rec.get("revision") else None
                if rec.get("explanation"):
                    alert["explanation"] = json.loads(rec["explanation"])
                payload = T.alert_payload(vid, {**alert, "change": rec["change"]}, msg_id=rec["msg_id"])
                yield "alert", vid, T.alerts_topic(vid), json.dumps(payload)
    ledger = root / LEGACY_LEDGER
    if ledger.is_file():
        db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
        try:
            for vid, payload in db.execute("SELECT vehicle_id, payload FROM vehicle_status ORDER BY vehicle_id"):
                yield "status", vid, T.status_topic(vid), payload
        finally:
            db.close()


def migrate(path, lake, batch: int = 50_000) -> dict:
    """Write the old dataset's rows into LAKE/landing/ (worker id `migrated`)."""
    from export.ingest import LandingWriter
    w = LandingWriter(lake, "migrated")
    now, items = time.time(), []
    for kind, vid, topic, payload in legacy_messages(path):
        items.append((kind, vid, topic, payload, now))
        if len(items) >= batch:
            w.write(items)
            items = []
    if items:
        w.write(items)
    return {"landed": dict(w.written), "files": w.files}
