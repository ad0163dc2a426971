"""The downlink against a real `trey-agent run` and a real mosquitto (issue #10 items 1, 6, 7):

- a 128 MB message on .../components is never delivered (MQTT 5 Maximum Packet Size in
  CONNECT): the agent's peak RSS does not move and it stays connected;
- a flood of valid component documents, each with a new VIN, is rate-limited and bounded:
  the car's own alerts stay in /api/alerts?active=1, /api/components stays bounded, every
  rejected message is counted;
- duplicate JSON keys, component names like ../../etc/passwd and lone surrogates are refused.
"""

from __future__ import annotations

import json
import random

import paho.mqtt.client as mqtt
import pytest

from agent import topics as T
from tests.conftest import wait_until
from tests.daemon_support import (NONCOMPLIANT, agent_config, hmi_port, http, start_agent_process, stop_process,
                                  wait_ready, write_spec)

VID = "TEST-CAR-1"
VIN = "WVWZZZ1JZXW000001"


def _status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return int(next(line.split()[1] for line in fh if line.startswith(key + ":")))   # kB


class _Cloud:
    def __init__(self, broker):
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"cloud-{random.randint(0, 1 << 30)}",
                             protocol=mqtt.MQTTv5)
        self.c.max_inflight_messages_set(1000)
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()

    def send(self, topic: str, payload, qos: int = 1):
        raw = payload if isinstance(payload, (bytes, bytearray)) else T.encode(payload)
        return self.c.publish(topic, raw, qos=qos)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def agent_proc(tmp_path, broker):
    spec = write_spec(tmp_path / "components.jsonl", VIN)
    cfg = agent_config(tmp_path, spec=spec, extra=f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
                                                  "reconnect_min_ms = 50\nreconnect_max_ms = 300\n")
    log = tmp_path / "agent.log"
    proc = start_agent_process(cfg, log_path=log)
    port = hmi_port(cfg)
    wait_ready(port, proc, log)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: http("GET", base + "/api/health")[1]["mqtt"].get("downlink_live"), 15, what="MQTT connected and downlink subscribed")
    yield proc, base, log
    rc, _ = stop_process(proc)
    assert rc == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()


def _health(base):
    return http("GET", base + "/api/health")[1]


def _rejected(base) -> dict:
    return _health(base)["mqtt"].get("downlink_rejected", {})


def _own_alerts(base) -> set:
    return {a["explanation"].get("component") for a in http("GET", base + "/api/alerts?active=1")[1]
            if a["kind"] == "compliance" and a["explanation"].get("vin") == VIN}


def test_128mb_components_message_is_never_delivered(agent_proc, broker):
    proc, base, log = agent_proc
    hwm_before = _status(proc.pid, "VmHWM")
    cloud = _Cloud(broker)
    try:
        cloud.send(T.components_topic(VID), b"{" + b" " * (128 * 1024 * 1024) + b"}").wait_for_publish(120)
        # A small valid document sent after it arrives (so the big one was processed first).
        doc = {"vin": VIN, "components": [{"component": "wiper arm",
                                           "note": "manufactured in 2020 made of steel in good condition"}]}
        cloud.send(T.components_topic(VID), T.components_message(VID, doc)).wait_for_publish(10)
        wait_until(lambda: any(c["component"] == "wiper arm" for c in http("GET", base + "/api/components")[1]),
                   30, what="the document after the 128 MB one")
    finally:
        cloud.close()
    grew_mb = (_status(proc.pid, "VmHWM") - hwm_before) / 1024
    assert grew_mb < 20, f"peak RSS grew by {grew_mb:.0f} MB"
    assert _health(base)["mqtt"]["connected"] and proc.poll() is None


def test_flood_of_valid_documents_is_bounded(agent_proc, broker):
    proc, base, log = agent_proc
    wait_until(lambda: _own_alerts(base) == NONCOMPLIANT, 30, what="the car's own compliance alerts")
    cloud = _Cloud(broker)
    n = 3000
    try:
        for i in range(n):
            doc = {"vin": f"FLOOD{i:07d}", "components": [
                {"component": "alternator", "note": "manufactured in 1985 made of steel in fair condition"}]}
            info = cloud.send(T.components_topic(VID), T.components_message(VID, doc))
        info.wait_for_publish(60)
        wait_until(lambda: sum(_rejected(base).values()) + _health(base)["mqtt"]["downlink_applied"]["components"]
                   >= n, 60, what=f"all {n} flood messages handled: {_rejected(base)}")
    finally:
        cloud.close()
    h = _health(base)
    rejected = h["mqtt"]["downlink_rejected"]
    applied = h["mqtt"]["downlink_applied"]["components"]
    assert rejected.get("components:rate_limited", 0) > 0, rejected
    assert rejected.get("components:not_applied", 0) > 0, rejected        # over components.max_vins
    assert h["components_rejected"].get("too_many_vins", 0) > 0, h["components_rejected"]
    assert applied <= 3                                     # max_vins = 4, the spec's VIN is one
    assert sum(rejected.values()) + applied == n            # every one counted
    assert _own_alerts(base) == NONCOMPLIANT                # the car's alerts are still listed
    comps = http("GET", base + "/api/components")[1]
    assert len({c["vin"] for c in comps}) <= 4 and len(comps) <= 200


@pytest.mark.parametrize("payload,reason", [
    (lambda: T.encode(T.components_message(VID, {"vin": VIN, "components": [
        {"component": "../../etc/passwd", "note": "steel 2012 good"}]})), "components:bad_field"),
    (lambda: T.encode(T.components_message(VID, {"vin": VIN, "components": [       # surrogate as raw bytes
        {"component": "hood hinge", "note": "steel SUR 2012 good"}]})).replace(b"SUR", b"\xed\xa0\x80"),
     "components:bad_json"),
    (lambda: T.encode(T.components_message(VID, {"vin": VIN, "components": [
        {"component": "hood hinge", "note": "steel 2012 good"}]})).replace(b'"vin":', b'"vin":"X","vin":', 1),
     "components:bad_json"),
    (lambda: json.dumps({"schema": 1, "msg_id": T.new_msg_id(), "vehicle_id": VID, "vin": VIN, "components": [
        {"component": "hood hinge", "note": "steel \ud800 2012 good"}]}).encode(), "components:bad_json"),
], ids=["path-traversal-name", "lone-surrogate", "duplicate-key", "escaped-surrogate"])
def test_hostile_names_and_text_are_refused(agent_proc, broker, payload, reason):
    proc, base, log = agent_proc
    before = _rejected(base).get(reason, 0)
    cloud = _Cloud(broker)
    try:
        cloud.send(T.components_topic(VID), payload()).wait_for_publish(10)
        wait_until(lambda: _rejected(base).get(reason, 0) == before + 1, 15, what=f"{reason} counted")
    finally:
        cloud.close()
    comps = http("GET", base + "/api/components")[1]
    assert not any(c["component"] in ("../../etc/passwd", "hood hinge") for c in comps)
