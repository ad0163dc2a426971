"""The lake's tables as pyarrow schemas: the code form of docs/lake.md (tested to agree).

Every table is LAKE/<name>/date=YYYY-MM-DD/*.parquet; `date` is the hive partition (a
directory, not a column inside the files) and PARTITION_SOURCE says which column it is
derived from. Non-nullable fields are the NOT NULL columns of the page.
"""

from __future__ import annotations

import pyarrow as pa

from agent.schema import DAILY_COLUMNS

TS = pa.timestamp("us", tz="UTC")
JSON = pa.string()          # a column holding a JSON document

LANDING, DAILY, ALERTS, STATUS, FORECASTS, COMPLIANCE = ("landing", "daily", "alerts", "status",
                                                         "forecasts", "compliance")
CURATED = (DAILY, ALERTS, STATUS)       # written by `lake compact` from landing/
COMPACTION_DIR = "_compaction"          # compaction's bookkeeping, not a table


def _f(name, type_, nullable=True):
    return pa.field(name, type_, nullable=nullable)


# The agent's daily columns and their lake types; a column the agent adds later is a double
# unless named here (text columns must be).
_DAILY_TYPES = {"Date": pa.date32(), "Battery_ID": pa.string(), "Battery_Age_Days": pa.int64(),
                "Number_Of_Trips": pa.int64(), "Cycles_Source": pa.string()}
DAILY_NOT_NULL = ("Date", "Battery_ID")

SCHEMAS: dict[str, pa.Schema] = {
    LANDING: pa.schema([
        _f("msg_id", pa.string(), False), _f("kind", pa.string(), False), _f("vehicle_id", pa.string(), False),
        _f("topic", pa.string(), False), _f("received_at", TS, False), _f("worker", pa.string(), False),
        _f("payload", JSON, False)]),
    DAILY: pa.schema(
        [_f(c, _DAILY_TYPES.get(c, pa.float64()), c not in DAILY_NOT_NULL) for c in DAILY_COLUMNS]
        + [_f("vehicle_id", pa.string(), False), _f("msg_id", pa.string(), False), _f("received_at", TS, False)]),
    ALERTS: pa.schema(
        [_f("msg_id", pa.string(), False), _f("vehicle_id", pa.string(), False), _f("change", pa.string()),
         _f("alert_id", pa.int64())]
        + [_f(c, pa.string()) for c in ("key", "kind", "severity", "state", "title", "message")]
        + [_f(c, TS) for c in ("created", "updated", "acknowledged", "cleared")]
        + [_f("acknowledged_by", pa.string()), _f("vehicle_date", pa.date32()), _f("raised_vehicle_date", pa.date32()),
           _f("revision", pa.int64()), _f("explanation", JSON), _f("received_at", TS, False)]),
    STATUS: pa.schema(
        [_f("msg_id", pa.string(), False), _f("vehicle_id", pa.string(), False), _f("state", pa.string()),
         _f("at", TS)]
        + [_f(c, pa.int64()) for c in ("outbox_rows", "outbox_bytes", "outbox_sent", "dropped_telemetry",
                                       "dropped_alerts")]
        + [_f("downlink_rejected", JSON), _f("models", JSON), _f("payload", JSON), _f("received_at", TS, False)]),
    FORECASTS: pa.schema([
        _f("battery_id", pa.string(), False), _f("vehicle_id", pa.string()), _f("as_of", pa.date32(), False),
        _f("lifetime_cycles", pa.float64()), _f("rated_cycles", pa.float64()),
        _f("forecast_daily_cycles", pa.list_(pa.float64())), _f("projected_lifetime_cycles_30d", pa.float64()),
        _f("days_to_rated", pa.int64()), _f("alert", pa.bool_()), _f("fallback", pa.string()),
        _f("history_days", pa.int64()), _f("model", pa.string()), _f("scored_at", TS, False)]),
    COMPLIANCE: pa.schema([
        _f("vehicle_id", pa.string(), False), _f("vin", pa.string()), _f("component", pa.string(), False),
        _f("verdict", pa.string()), _f("compliant", pa.bool_()), _f("year_value", pa.int64()),
        _f("year_state", pa.string()), _f("material_state", pa.string()), _f("condition_state", pa.string()),
        _f("material_value", pa.string()), _f("condition_value", pa.string()),
        _f("missing", pa.list_(pa.string())), _f("why", pa.list_(pa.string())), _f("model", pa.string()),
        _f("scored_at", TS, False)]),
}

# The column each table's `date=` partition is the (UTC) day of.
PARTITION_SOURCE = {LANDING: "received_at", DAILY: "Date", ALERTS: "updated", STATUS: "at",
                    FORECASTS: "as_of", COMPLIANCE: "scored_at"}
PARTITION = "date"


def schema(name: str) -> pa.Schema:
    return SCHEMAS[name]


def table_uri(lake: str, name: str) -> str:
    return f"{str(lake).rstrip('/')}/{name}"
