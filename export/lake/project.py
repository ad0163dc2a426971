"""Landing messages (validated uplink payloads, JSON) -> rows of the curated tables, as Arrow
record batches typed by export.lake.tables. Runs inside Spark (mapInArrow) and in tests."""

from __future__ import annotations

import datetime as dt
import json
import math

import pyarrow as pa

from agent.schema import DAILY_COLUMNS
from export.lake import tables as LT

_ALERT_TEXT = ("key", "kind", "severity", "state", "title", "message", "acknowledged_by")
_ALERT_TS = ("created", "updated", "acknowledged", "cleared")
_STATUS_INTS = ("outbox_rows", "outbox_bytes", "outbox_sent", "dropped_telemetry", "dropped_alerts")


def _num(v):
    if v is None or isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _int(v):
    x = _num(v)
    return None if x is None or abs(x) > 2 ** 62 else int(round(x))


def _date(v):
    try:
        return dt.date.fromisoformat(str(v)[:10]) if v not in (None, "") else None
    except ValueError:
        return None


def _ts(v):
    if v in (None, ""):
        return None
    try:
        t = dt.datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


def _json(v):
    return None if v is None else json.dumps(v, sort_keys=True, separators=(",", ":"))


_DAILY_CONV = {f.name: (_date if f.type == pa.date32() else _int if f.type == pa.int64()
                        else (lambda v: None if v is None else str(v)) if f.type == pa.string() else _num)
               for f in LT.SCHEMAS[LT.DAILY] if f.name in DAILY_COLUMNS}


def daily_row(obj: dict, vehicle_id: str, received_at) -> dict:
    row = obj["row"]
    r = {c: _DAILY_CONV[c](row.get(c)) for c in DAILY_COLUMNS}
    r.update(vehicle_id=vehicle_id, msg_id=obj["msg_id"], received_at=received_at)
    return r


def alert_row(obj: dict, vehicle_id: str, received_at) -> dict:
    a = obj["alert"]
    r = {"msg_id": obj["msg_id"], "vehicle_id": vehicle_id, "change": obj.get("change"), "alert_id": _int(a.get("id"))}
    r.update({k: (None if a.get(k) is None else str(a.get(k))) for k in _ALERT_TEXT})
    r.update({k: _ts(a.get(k)) for k in _ALERT_TS})
    r.update(vehicle_date=_date(a.get("vehicle_date")), raised_vehicle_date=_date(a.get("raised_vehicle_date")),
             revision=_int(a.get("revision")), explanation=_json(a.get("explanation")), received_at=received_at)
    return r


def status_row(obj: dict, vehicle_id: str, received_at) -> dict:
    r = {"msg_id": obj["msg_id"], "vehicle_id": vehicle_id, "state": obj.get("state"), "at": _ts(obj.get("at"))}
    r.update({k: _int(obj.get(k)) for k in _STATUS_INTS})
    r.update(downlink_rejected=_json(obj.get("downlink_rejected")), models=_json(obj.get("models")),
             payload=_json(obj), received_at=received_at)
    return r


ROW = {"daily": (LT.DAILY, daily_row), "alert": (LT.ALERTS, alert_row), "status": (LT.STATUS, status_row)}


def with_partition(name: str) -> pa.Schema:
    return LT.SCHEMAS[name].append(pa.field(LT.PARTITION, pa.date32(), False))


def _partition_day(name: str, r: dict):
    v = r.get(LT.PARTITION_SOURCE[name]) or r["received_at"]
    return v if isinstance(v, dt.date) and not isinstance(v, dt.datetime) else v.date()


def _daily_fast(batch: pa.RecordBatch) -> pa.RecordBatch:
    """daily_row for a whole batch in Arrow's C++ JSON reader (no Python per row); raises on
    anything unusual (a number sent as text, ...), then the row-by-row path decides."""
    import io

    import pyarrow.compute as pc
    import pyarrow.json as pj
    target = LT.SCHEMAS[LT.DAILY]
    row_t = pa.struct([pa.field(c, pa.string() if target.field(c).type in (pa.string(), pa.date32())
                                else pa.float64()) for c in DAILY_COLUMNS])
    text = "\n".join(batch.column("payload").to_pylist()).encode()
    parsed = pj.read_json(io.BytesIO(text), parse_options=pj.ParseOptions(
        explicit_schema=pa.schema([("msg_id", pa.string()), ("row", row_t)]), unexpected_field_behavior="ignore"),
        read_options=pj.ReadOptions(block_size=max(len(text) + 1, 1 << 20)))
    rows = parsed.column("row").combine_chunks()
    cols = []
    for c in DAILY_COLUMNS:
        v = rows.field(c)
        t = target.field(c).type
        if t == pa.date32():
            v = pc.cast(pc.utf8_slice_codeunits(v, 0, 10), pa.date32())
        elif t == pa.int64():
            ok = pc.and_(pc.is_finite(v), pc.less_equal(pc.abs(v), 2.0 ** 62))
            v = pc.cast(pc.if_else(ok, pc.round(v), None), pa.int64())
        elif t == pa.float64():
            v = pc.if_else(pc.is_finite(v), v, None)
        cols.append(v)
    if parsed.column("msg_id").null_count or cols[0].null_count:
        raise ValueError("daily rows without msg_id or Date")
    cols += [batch.column("vehicle_id"), parsed.column("msg_id").combine_chunks(), batch.column("received_at"),
             cols[0]]
    return pa.RecordBatch.from_arrays(cols, schema=with_partition(LT.DAILY))


def project(kind: str, batch: pa.RecordBatch) -> pa.RecordBatch:
    """Landing rows of one kind -> that table's rows + the `date` partition column."""
    if kind == "daily" and batch.num_rows:
        try:
            return _daily_fast(batch)
        except (pa.ArrowException, ValueError):
            pass
    name, fn = ROW[kind]
    d = batch.to_pydict()
    out = []
    for vid, payload, rec in zip(d["vehicle_id"], d["payload"], d["received_at"]):
        r = fn(json.loads(payload), vid, rec)
        r[LT.PARTITION] = _partition_day(name, r)
        out.append(r)
    return pa.RecordBatch.from_pylist(out, schema=with_partition(name))
