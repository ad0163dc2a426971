"""The MQTT contract (agent/topics.py): builders and validators agree; bad payloads are named."""

from __future__ import annotations

import json
import math

import pytest

from agent import topics as T
from agent.schema import DAILY_COLUMNS
from tests.sync_support import make_row


def test_topic_table_round_trips():
    assert T.parse_topic(T.daily_topic("CAR-1")) == ("daily", "CAR-1")
    assert T.parse_topic(T.alerts_topic("CAR-1")) == ("alert", "CAR-1")
    assert T.parse_topic(T.status_topic("CAR-1")) == ("status", "CAR-1")
    assert T.parse_topic(T.components_topic("CAR-1")) == ("components", "CAR-1")
    assert T.parse_topic(T.ack_topic("CAR-1")) == ("ack", "CAR-1")
    assert T.parse_topic(T.model_topic("battery")) == ("model", "battery")
    for bad in ("trey/v2/CAR-1/alerts", "trey/v1/CAR-1/alerts/x", "trey/v1/fleet/alerts", "x", "trey/v1/+/ack"):
        assert T.parse_topic(bad) is None
    assert T.shared(T.INGEST_FILTERS[0]) == "$share/ingest/trey/v1/+/telemetry/daily"


def test_uplink_payloads_validate_and_carry_unique_ids():
    row = make_row("BAT-1", 3)
    row["Min_Cranking_Voltage"] = math.nan            # unknown -> null, JSON has no NaN
    a = T.daily_payload("CAR-1", row)
    b = T.daily_payload("CAR-1", row)
    assert a["msg_id"] != b["msg_id"] and a["schema"] == T.SCHEMA_VERSION
    kind, vid, obj = T.decode_uplink(T.daily_topic("CAR-1"), T.encode(a))
    assert (kind, vid) == ("daily", "CAR-1") and list(obj["row"]) == list(DAILY_COLUMNS)
    assert obj["row"]["Min_Cranking_Voltage"] is None
    alert = {"id": 3, "key": "battery:B", "kind": "battery", "state": "raised", "updated": "2025-01-01T00:00:00Z",
             "change": "raised", "revision": 1}
    assert T.decode_uplink(T.alerts_topic("CAR-1"), T.encode(T.alert_payload("CAR-1", alert)))[0] == "alert"
    nan_alert = {**alert, "explanation": {"forecast": [0.1, math.nan, math.inf], "x": {"y": -math.inf}}}
    obj = T.decode_uplink(T.alerts_topic("CAR-1"), T.encode(T.alert_payload("CAR-1", nan_alert)))[2]
    assert obj["alert"]["explanation"] == {"forecast": [0.1, None, None], "x": {"y": None}}
    with pytest.raises(T.PayloadError, match="alert:bad_date"):
        T.decode_uplink(T.alerts_topic("CAR-1"), T.encode(T.alert_payload("CAR-1", {**alert, "updated": "../../x"})))


@pytest.mark.parametrize("topic,payload,reason", [
    (T.daily_topic("CAR-1"), b"{", "daily:bad_json"),
    (T.daily_topic("CAR-2"), None, "daily:vehicle_mismatch"),
    (T.daily_topic("CAR-1"), {"row": {"Date": "2025-01-01"}}, "daily:bad_row"),
    (T.daily_topic("CAR-1"), {"row": {**make_row("B", 1), "Date": "../../etc"}}, "daily:bad_date"),
    (T.daily_topic("CAR-1"), {"schema": 2}, "daily:bad_schema"),
    ("trey/v1/CAR-1/other", None, "unexpected_topic"),
])
def test_uplink_rejections_are_named(topic, payload, reason):
    good = T.daily_payload("CAR-1", make_row("B", 1))
    if payload is None:
        payload = T.encode(good)
    elif isinstance(payload, dict):
        payload = json.dumps({**good, **payload}).encode()
    with pytest.raises(T.PayloadError) as e:
        T.decode_uplink(topic, payload)
    assert e.value.reason == reason


def test_downlink_validation():
    ack = T.ack_message("CAR-1", 5, by="app")
    assert T.decode_downlink(T.ack_topic("CAR-1"), T.encode(ack), "CAR-1", 1000) == ("ack", {"alert_id": 5, "by": "app"})
    with pytest.raises(T.PayloadError, match="ack:oversize"):
        T.decode_downlink(T.ack_topic("CAR-1"), T.encode(ack), "CAR-1", 10)
    with pytest.raises(T.PayloadError, match="ack:unknown_vehicle"):
        T.decode_downlink(T.ack_topic("CAR-1"), T.encode(ack), "CAR-9", 1000)
    with pytest.raises(T.PayloadError, match="unexpected_topic"):
        T.decode_downlink(T.daily_topic("CAR-1"), T.encode(ack), "CAR-1", 1000)
    release = {"signed": {"_type": "release"}, "signatures": []}
    ann = T.model_announcement("battery", release, b"tar bytes")
    kind, body = T.decode_downlink(T.model_topic("battery"), T.encode(ann), "CAR-1", 10_000)
    # nothing is decoded before the release metadata is verified (agent.model_downlink)
    assert kind == "model" and body["bundle_b64"] == ann["bundle"] and body["release"] == release
    with pytest.raises(T.PayloadError, match="model:no_release"):
        T.decode_downlink(T.model_topic("battery"), T.encode({**ann, "release": "x"}), "CAR-1", 10_000)
    with pytest.raises(T.PayloadError, match="model:name_mismatch"):
        T.decode_downlink(T.model_topic("compliance"), T.encode(ann), "CAR-1", 10_000)
