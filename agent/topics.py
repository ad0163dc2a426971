"""The MQTT contract: THE topic table and payload schemas (one owner; agent, ingest and
tests all use this module, nobody formats a topic or a payload by hand).

Topics (QoS 1, UTF-8 JSON payloads):
  up    trey/v1/{vehicle_id}/telemetry/daily   one closed daily row        (outbox, kind "telemetry")
  up    trey/v1/{vehicle_id}/alerts            one alert change            (outbox, kind "alert")
  up    trey/v1/{vehicle_id}/status            retained; last will = offline
  down  trey/v1/{vehicle_id}/components        component notes to classify
  down  trey/v1/{vehicle_id}/ack               alert acknowledgement from the cloud/app
  down  trey/v1/fleet/models/{name}            retained model-bundle announcement
  down  trey/v1/fleet/models/{name}/chunks/{i} retained chunk i of a chunked announcement
  down  trey/v1/fleet/root                     retained root-of-trust chain (key rotation)

Every payload is an object with `schema` (int, SCHEMA_VERSION) and `msg_id` (32 hex chars,
unique per message, kept across retries so the cloud deduplicates at-least-once delivery).

Payloads:
  daily      {schema, msg_id, vehicle_id, row: {DAILY_COLUMNS...}}
  alert      {schema, msg_id, vehicle_id, change, alert: {id, key, kind, severity, title,
              message, explanation, state, created, updated, acknowledged, acknowledged_by,
              cleared, vehicle_date, raised_vehicle_date, revision}}
  status     {schema, msg_id, vehicle_id, state: "online"|"offline", at, outbox{...},
              downlink_rejected{reason: n}, models{name: {version, sha256, outcome, at}}}
  components {schema, msg_id, vehicle_id, vin, components: [{component, note}, ...]}
             (the spec-document shape of agent/schema.py plus the envelope)
  ack        {schema, msg_id, vehicle_id, alert_id: int, by?: str}
  model      {schema, msg_id, name, release, bundle | chunks}
             name    = the model slot the bundle is for (battery | compliance), = topic level
             release = signed release metadata (agent.release_metadata): slot, version,
                       expiry, cohort, shadow, and the tar's length + sha256
             bundle  = base64 of the bundle tar (agent.bundle format), or instead
             chunks  = N, with N retained messages on .../{name}/chunks/{i}:
  model chunk {schema, msg_id, name, sha256 (of the whole tar), index: i, data: base64}
             The agent verifies the release metadata FIRST (signatures, version, expiry,
             slot, cohort); only then does it decode the bundle (or subscribe to the chunks,
             keeping at most the signed length), check length + sha256, and open the tar.
  root       {schema, msg_id, roots: [signed root metadata, ...]} on trey/v1/fleet/root
             (retained): the chain of root versions; the car applies each newer one that
             its current root vouches for. `model_announcement()`, `model_chunks()` and
             `root_message()` build them.

Downlink validation: `decode_downlink(topic, payload, vehicle_id, max_bytes)` returns
(kind, body) or raises PayloadError(reason) with a short reason such as
"components:oversize" or "ack:bad_type" — callers count per reason and log once per reason.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid

from agent import validate
from agent.jsonsafe import finite, jsonable
from agent.schema import DAILY_COLUMNS, OPTIONAL_COLUMNS

SCHEMA_VERSION = 1
PREFIX = "trey/v1"
QOS = 1

KIND_TELEMETRY = "telemetry"
KIND_ALERT = "alert"

_VID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MODEL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_MSG_ID = re.compile(r"^[0-9a-f]{32}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
ALERT_CHANGES = ("raised", "updated", "acknowledged", "cleared")
ALERT_FIELDS = ("id", "key", "kind", "severity", "title", "message", "explanation", "state", "created",
                "updated", "acknowledged", "acknowledged_by", "cleared", "vehicle_date",
                "raised_vehicle_date", "revision")


class PayloadError(ValueError):
    """A payload that breaks the contract; str(exc) is the reason "<kind>:<what>"."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


# ----------------------------------------------------------------------------- topics
def daily_topic(vehicle_id: str) -> str:
    return f"{PREFIX}/{vehicle_id}/telemetry/daily"


def alerts_topic(vehicle_id: str) -> str:
    return f"{PREFIX}/{vehicle_id}/alerts"


def status_topic(vehicle_id: str) -> str:
    return f"{PREFIX}/{vehicle_id}/status"


def components_topic(vehicle_id: str) -> str:
    return f"{PREFIX}/{vehicle_id}/components"


def ack_topic(vehicle_id: str) -> str:
    return f"{PREFIX}/{vehicle_id}/ack"


def model_topic(name: str) -> str:
    return f"{PREFIX}/fleet/models/{name}"


MODELS_FILTER = f"{PREFIX}/fleet/models/+"
ROOT_TOPIC = f"{PREFIX}/fleet/root"
MODEL_CHUNKS_FILTER = f"{PREFIX}/fleet/models/+/chunks/+"
MAX_CHUNKS = 4096
# Downlink bounds per kind (bytes). components: 500 notes of <= 1,000 chars; the broker
# never delivers more than mqtt.max_payload_bytes (MQTT 5 Maximum Packet Size in CONNECT).
SMALL_MAX_BYTES = {"components": 256 * 1024, "ack": 4 * 1024}


def model_chunk_topic(name: str, index: int) -> str:
    return f"{PREFIX}/fleet/models/{name}/chunks/{index}"


def model_chunks_filter(name: str) -> str:
    """Subscribed only while a verified announcement of this slot waits for its chunks."""
    return f"{PREFIX}/fleet/models/{name}/chunks/+"
# What the cloud ingest subscribes to (wrap with shared() for a worker group).
INGEST_FILTERS = (f"{PREFIX}/+/telemetry/daily", f"{PREFIX}/+/alerts", f"{PREFIX}/+/status")


def downlink_filters(vehicle_id: str) -> list[str]:
    # The root first (a rotation must be known before the releases it signs); chunks are not
    # subscribed here: only after a slot's announcement verified (agent.model_downlink).
    return [ROOT_TOPIC, components_topic(vehicle_id), ack_topic(vehicle_id), MODELS_FILTER]


def shared(topic_filter: str, group: str = "ingest") -> str:
    """MQTT 5 shared subscription: the broker hands each message to one group member."""
    return f"$share/{group}/{topic_filter}"


def parse_topic(topic: str) -> tuple[str, str] | None:
    """topic -> (kind, vehicle_id or model name) for every topic of the table, else None.
    kinds: daily, alert, status, components, ack, model, model_chunk (ident "name/index"), root."""
    parts = topic.split("/")
    if len(parts) < 3 or "/".join(parts[:2]) != PREFIX:
        return None
    rest = parts[2:]
    if rest == ["fleet", "root"]:
        return "root", "fleet"
    if len(rest) == 3 and rest[:2] == ["fleet", "models"] and _MODEL_NAME.fullmatch(rest[2]):
        return "model", rest[2]
    if (len(rest) == 5 and rest[:2] == ["fleet", "models"] and _MODEL_NAME.fullmatch(rest[2])
            and rest[3] == "chunks" and rest[4].isdigit() and len(rest[4]) <= 4):
        return "model_chunk", f"{rest[2]}/{int(rest[4])}"
    if not _VID.fullmatch(rest[0]) or rest[0] == "fleet":
        return None
    tail = "/".join(rest[1:])
    kind = {"telemetry/daily": "daily", "alerts": "alert", "status": "status",
            "components": "components", "ack": "ack"}.get(tail)
    return (kind, rest[0]) if kind else None


# ----------------------------------------------------------------------------- uplink builders
def new_msg_id() -> str:
    return uuid.uuid4().hex


def encode(obj: dict) -> bytes:
    """Compact UTF-8 JSON. NaN/inf (JSON has none) become null rather than failing: this runs
    inside the transaction of an alert change, which must never abort over a payload."""
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                          default=jsonable).encode()
    except ValueError:
        return json.dumps(finite(obj), separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                          default=jsonable).encode()


def _clean_number(v):
    # JSON has no NaN/inf: an unknown health value travels as null (empty CSV cell).
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return None
    return v


def daily_payload(vehicle_id: str, row: dict, msg_id: str | None = None) -> dict:
    return {"schema": SCHEMA_VERSION, "msg_id": msg_id or new_msg_id(), "vehicle_id": vehicle_id,
            "row": {c: _clean_number(row.get(c)) for c in DAILY_COLUMNS}}


def alert_payload(vehicle_id: str, alert: dict, msg_id: str | None = None) -> dict:
    return {"schema": SCHEMA_VERSION, "msg_id": msg_id or new_msg_id(), "vehicle_id": vehicle_id,
            "change": alert.get("change"), "alert": {k: alert.get(k) for k in ALERT_FIELDS}}


def status_payload(vehicle_id: str, state: str, at: str, **extra) -> dict:
    return {"schema": SCHEMA_VERSION, "msg_id": new_msg_id(), "vehicle_id": vehicle_id,
            "state": state, "at": at, **extra}


def model_announcement(name: str, release: dict, tar_bytes: bytes, msg_id: str | None = None) -> dict:
    """Cloud side: the retained announcement of a bundle tar with its signed release."""
    return {"schema": SCHEMA_VERSION, "msg_id": msg_id or new_msg_id(), "name": name, "release": release,
            "bundle": base64.b64encode(tar_bytes).decode()}


def model_chunks(name: str, release: dict, tar_bytes: bytes,
                 chunk_bytes: int = 64 * 1024) -> tuple[dict, list[tuple[str, dict]]]:
    """Cloud side: (announcement, [(chunk topic, chunk payload), ...]) — publish all retained."""
    import hashlib
    sha = hashlib.sha256(tar_bytes).hexdigest()
    parts = [tar_bytes[i:i + chunk_bytes] for i in range(0, len(tar_bytes), chunk_bytes)] or [b""]
    ann = {"schema": SCHEMA_VERSION, "msg_id": new_msg_id(), "name": name, "release": release,
           "chunks": len(parts)}
    return ann, [(model_chunk_topic(name, i), {"schema": SCHEMA_VERSION, "msg_id": new_msg_id(), "name": name,
                                               "sha256": sha, "index": i, "data": base64.b64encode(p).decode()})
                 for i, p in enumerate(parts)]


def root_message(roots: list[dict]) -> dict:
    """Cloud side: the retained root chain (every root version, oldest first)."""
    return {"schema": SCHEMA_VERSION, "msg_id": new_msg_id(), "roots": list(roots)}


def components_message(vehicle_id: str, doc: dict, msg_id: str | None = None) -> dict:
    return {"schema": SCHEMA_VERSION, "msg_id": msg_id or new_msg_id(), "vehicle_id": vehicle_id,
            "vin": doc.get("vin"), "components": doc.get("components")}


def ack_message(vehicle_id: str, alert_id: int, by: str = "cloud", msg_id: str | None = None) -> dict:
    return {"schema": SCHEMA_VERSION, "msg_id": msg_id or new_msg_id(), "vehicle_id": vehicle_id,
            "alert_id": int(alert_id), "by": by}


# ----------------------------------------------------------------------------- validation
def _loads(kind: str, payload: bytes, max_bytes: int) -> dict:
    if not isinstance(payload, (bytes, bytearray)):
        raise PayloadError(f"{kind}:bad_type", "payload is not bytes")
    if len(payload) > max_bytes:
        raise PayloadError(f"{kind}:oversize", f"{len(payload)} > {max_bytes} bytes")
    try:
        # Strict (agent.validate): duplicate keys, NaN, lone surrogates, deep nesting refused.
        obj = validate.loads_json(payload)
    except validate.InvalidInput as exc:
        raise PayloadError(f"{kind}:bad_json", str(exc)[:120]) from None
    if not isinstance(obj, dict):
        raise PayloadError(f"{kind}:not_object")
    if obj.get("schema") != SCHEMA_VERSION or isinstance(obj.get("schema"), bool):
        raise PayloadError(f"{kind}:bad_schema", f"schema {str(obj.get('schema'))[:20]!r}")
    if not isinstance(obj.get("msg_id"), str) or not _MSG_ID.fullmatch(obj["msg_id"]):
        raise PayloadError(f"{kind}:bad_msg_id")
    return obj


def _str(kind, obj, key, maxlen, required=True, pattern=None):
    v = obj.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, str) or not v or len(v) > maxlen or (pattern is not None and not pattern.fullmatch(v)):
        raise PayloadError(f"{kind}:bad_field", f"{key}")
    return v


def _unexpected(kind: str, obj: dict, allowed: set) -> None:
    extra = set(obj) - allowed
    if extra:
        raise PayloadError(f"{kind}:unexpected_field", sorted(extra)[0][:40])


def _check_vehicle(kind: str, obj: dict, vehicle_id: str) -> None:
    if obj.get("vehicle_id") != vehicle_id:
        raise PayloadError(f"{kind}:unknown_vehicle", str(obj.get("vehicle_id"))[:64])


def validate_components(obj: dict, vehicle_id: str) -> dict:
    k = "components"
    _unexpected(k, obj, {"schema", "msg_id", "vehicle_id", "vin", "components"})
    _check_vehicle(k, obj, vehicle_id)
    comps = obj.get("components")
    if not isinstance(comps, list) or not 1 <= len(comps) <= 500:
        raise PayloadError(f"{k}:bad_field", "components")
    try:
        validate.vin(obj.get("vin"))
        for c in comps:
            if not isinstance(c, dict) or set(c) - {"component", "note"}:
                raise PayloadError(f"{k}:bad_field", "component entry")
            validate.component(c.get("component"))
            validate.text(c.get("note"), "note", 1000)
    except validate.InvalidInput as exc:
        raise PayloadError(f"{k}:bad_field", str(exc)[:120]) from None
    return {"vin": obj["vin"], "components": [{"component": c["component"], "note": c["note"]} for c in comps]}


def validate_ack(obj: dict, vehicle_id: str) -> dict:
    k = "ack"
    _unexpected(k, obj, {"schema", "msg_id", "vehicle_id", "alert_id", "by"})
    _check_vehicle(k, obj, vehicle_id)
    aid = obj.get("alert_id")
    if not isinstance(aid, int) or isinstance(aid, bool) or not 0 < aid < 2 ** 53:
        raise PayloadError(f"{k}:bad_field", "alert_id")
    by = _str(k, obj, "by", 64, required=False) or "cloud"
    if not validate.is_text(by):
        raise PayloadError(f"{k}:bad_field", "by")
    return {"alert_id": aid, "by": by}


def validate_model(obj: dict, name: str) -> dict:
    """-> {name, release, bundle_b64 (str, NOT decoded) | None, chunks, msg_id}. Structure
    only: nothing is decoded before agent.model_downlink has verified the release."""
    k = "model"
    _unexpected(k, obj, {"schema", "msg_id", "name", "release", "bundle", "chunks"})
    if obj.get("name") != name:
        raise PayloadError(f"{k}:name_mismatch", str(obj.get("name"))[:32])
    rel = obj.get("release")
    if not isinstance(rel, dict) or not isinstance(rel.get("signed"), dict) or not isinstance(rel.get("signatures"), list):
        raise PayloadError(f"{k}:no_release", "announcement without signed release metadata")
    if "chunks" in obj and "bundle" not in obj:
        n = obj["chunks"]
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CHUNKS:
            raise PayloadError(f"{k}:bad_field", "chunks")
        return {"name": name, "release": rel, "bundle_b64": None, "chunks": n, "msg_id": obj["msg_id"]}
    data = obj.get("bundle")
    if not isinstance(data, str) or not data:
        raise PayloadError(f"{k}:bad_field", "bundle")
    return {"name": name, "release": rel, "bundle_b64": data, "chunks": 0, "msg_id": obj["msg_id"]}


def validate_root(obj: dict) -> dict:
    k = "root"
    _unexpected(k, obj, {"schema", "msg_id", "roots"})
    roots = obj.get("roots")
    if not isinstance(roots, list) or not 1 <= len(roots) <= 64 or not all(isinstance(r, dict) for r in roots):
        raise PayloadError(f"{k}:bad_field", "roots")
    return {"roots": roots}


def validate_model_chunk(obj: dict, name: str, index: int) -> dict:
    k = "model_chunk"
    _unexpected(k, obj, {"schema", "msg_id", "name", "sha256", "index", "data"})
    if obj.get("name") != name or obj.get("index") != index or isinstance(obj.get("index"), bool):
        raise PayloadError(f"{k}:topic_mismatch")
    _str(k, obj, "sha256", 64, pattern=_HEX64)
    if not isinstance(obj.get("data"), str):
        raise PayloadError(f"{k}:bad_field", "data")
    try:
        data = base64.b64decode(obj["data"], validate=True)
    except (binascii.Error, ValueError):
        raise PayloadError(f"{k}:bad_base64") from None
    return {"name": name, "sha256": obj["sha256"], "index": index, "data": data}


def decode_downlink(topic: str, payload: bytes, vehicle_id: str, max_bytes: int) -> tuple[str, dict]:
    """Validate one downlink message -> (kind, body). Raises PayloadError(reason).

    components -> {"vin", "components": [...]}, ack -> {"alert_id", "by"},
    model -> {"name", "release", "bundle_b64" (None if chunked), "chunks"},
    model_chunk -> {"name", "sha256", "index", "data"}, root -> {"roots"}."""
    parsed = parse_topic(topic)
    if parsed is None or parsed[0] not in ("components", "ack", "model", "model_chunk", "root"):
        raise PayloadError("unexpected_topic", topic[:100])
    kind, ident = parsed
    # Notes and acks are small: they get their own bound, below the one for model bundles.
    max_bytes = min(max_bytes, SMALL_MAX_BYTES.get(kind, max_bytes))
    if kind == "model_chunk":
        name, index = ident.split("/")
        return kind, validate_model_chunk(_loads(kind, payload, max_bytes), name, int(index))
    if kind == "root":
        return kind, validate_root(_loads(kind, payload, max_bytes))
    if kind != "model" and ident != vehicle_id:
        raise PayloadError(f"{kind}:unknown_vehicle", ident)
    obj = _loads(kind, payload, max_bytes)
    if kind == "components":
        return kind, validate_components(obj, vehicle_id)
    if kind == "ack":
        return kind, validate_ack(obj, vehicle_id)
    return kind, validate_model(obj, ident)


def decode_uplink(topic: str, payload: bytes, max_bytes: int = 1 << 20) -> tuple[str, str, dict]:
    """Cloud side: validate an uplink message -> (kind, vehicle_id, obj). kinds: daily,
    alert, status. Raises PayloadError(reason)."""
    parsed = parse_topic(topic)
    if parsed is None or parsed[0] not in ("daily", "alert", "status"):
        raise PayloadError("unexpected_topic", topic[:100])
    kind, vid = parsed
    obj = _loads(kind, payload, max_bytes)
    if obj.get("vehicle_id") != vid:
        raise PayloadError(f"{kind}:vehicle_mismatch")
    if kind == "daily":
        row = obj.get("row")
        if not isinstance(row, dict) or not set(DAILY_COLUMNS) - set(OPTIONAL_COLUMNS) <= set(row) <= set(DAILY_COLUMNS):
            raise PayloadError("daily:bad_row")
        row = obj["row"] = {c: row.get(c) for c in DAILY_COLUMNS}      # an older agent's row: new columns empty
        if not isinstance(row.get("Date"), str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["Date"]):
            raise PayloadError("daily:bad_date")
        for c in DAILY_COLUMNS:
            v = row[c]
            if v is not None and not isinstance(v, (str, int, float)) or isinstance(v, bool):
                raise PayloadError("daily:bad_type", c)
    elif kind == "alert":
        a = obj.get("alert")
        if not isinstance(a, dict) or obj.get("change") not in ALERT_CHANGES:
            raise PayloadError("alert:bad_alert")
        if not isinstance(a.get("id"), int) or not isinstance(a.get("kind"), str) \
                or not isinstance(a.get("state"), str) or not isinstance(a.get("updated"), str):
            raise PayloadError("alert:bad_alert")
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", a["updated"][:10]):   # it names a dataset partition
            raise PayloadError("alert:bad_date")
    elif obj.get("state") not in ("online", "offline"):
        raise PayloadError("status:bad_state")
    return kind, vid, obj
