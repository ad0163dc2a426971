"""Downlink against a real mosquitto: fuzzing never hurts the agent; model announcements are
verified (hash + ed25519) before the swap; components and acks reach their handlers."""

from __future__ import annotations

import base64
import json
import random
import threading

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from agent import topics as T
from agent.alerts import Alerts
from agent.sync import Sync
from tests.conftest import wait_until
from tests.sync_support import agent_cfg, fuzz_payloads, open_store

VID = "CAR-7"


def tiny_onnx(scale: float) -> bytes:
    """y = x * scale — a real ONNX model, so 'used by the next inference' is observable."""
    from onnx import TensorProto, helper
    g = helper.make_graph(
        [helper.make_node("Mul", ["x", "s"], ["y"])], "scale",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [helper.make_tensor("s", TensorProto.FLOAT, [1], [scale])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m.SerializeToString()


def make_bundle(tmp, version: str, scale: float, key_path=None):
    """A real bundle directory around a tiny ONNX model (bundle signed with key_path or the dev key)."""
    from export.bundle import build_bundle
    return build_bundle(tmp / f"bundle-{version}", tiny_onnx(scale), {"name": "battery", "version": version},
                        key_path=key_path)


class ModelSlot:
    """What the daemon does with a verified bundle: build the session, swap one reference."""

    def __init__(self):
        self.current = (None, "shipped")
        self.installed = []

    def install(self, name, files, release=None):
        import onnxruntime as ort
        manifest = json.loads(files["manifest.json"])
        sess = ort.InferenceSession(files["model.onnx"], providers=["CPUExecutionProvider"])
        self.current = (sess, manifest["version"])
        self.installed.append(manifest["version"])
        return True

    def infer(self, x: float) -> float:
        sess, _ = self.current
        return float(sess.run(None, {"x": np.array([x], dtype=np.float32)})[0][0])


class Cloud:
    """The cloud side of the downlink: a plain paho client."""

    def __init__(self, broker):
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"cloud-{random.randint(0, 1 << 30)}",
                             protocol=mqtt.MQTTv5)
        self.status = {}
        self.c.on_message = self._on_status
        self.c.connect(broker.host, broker.port)
        self.c.subscribe(T.status_topic(VID), 1)
        self.c.loop_start()

    def _on_status(self, client, userdata, message):
        if message.payload:                      # empty = a retained message being cleared
            self.status = json.loads(message.payload)

    def send(self, topic, payload, retain=False):
        if isinstance(payload, dict):
            payload = json.dumps(payload).encode()
        return self.c.publish(topic, payload, qos=1, retain=retain)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def agent(tmp_path, broker):
    store = open_store(tmp_path / "state")
    alerts = Alerts(store)
    slot = ModelSlot()
    docs = []
    # Rate limits out of the way: these tests are about contents (test_downlink_flood.py: rates).
    sync = Sync(agent_cfg(tmp_path / "state", broker.host, broker.port, VID, max_payload_bytes=256 * 1024,
                          downlink_rate_per_s=1_000_000, downlink_burst=1_000_000),
                store, alerts, on_components=lambda d: (docs.append(d), len(d["components"]))[1],
                on_bundle=slot.install, backoff_min=0.05, backoff_max=0.3, status_interval=0.5).start()
    wait_until(lambda: sync.status()["downlink_live"], 10, what="agent connected and subscribed to its downlink")
    yield sync, alerts, slot, docs
    sync.stop()


def test_downlink_fuzz_keeps_agent_up_and_state_unchanged(agent, broker):
    sync, alerts, slot, docs = agent
    a, _ = alerts.raise_or_update("battery:B1", "battery", "warning", "Battery", "end of life soon", {"n": 1})
    before = alerts.list()
    cloud = Cloud(broker)
    sent = 0
    for topic, payload in fuzz_payloads(random.Random(6), 2500, VID):
        cloud.send(topic, payload)
        sent += 1
    cloud.send(T.ack_topic(VID), T.ack_message(VID, a["id"] + 1000))           # unknown alert: rejected
    sent += 1
    # a valid document after the flood is still handled: the agent is alive and not blocked
    cloud.send(T.components_topic(VID), T.components_message(
        VID, {"vin": "VIN-9", "components": [{"component": "alternator", "note": "made in 1985"}]})).wait_for_publish(10)
    wait_until(lambda: docs, 30, what="the valid components document after the fuzz")
    wait_until(lambda: sum(sync.status()["downlink_rejected"].values()) >= sent, 30,
               what=f"{sent} rejections: {sync.status()['downlink_rejected']}")
    st = sync.status()
    cloud.close()
    assert sum(st["downlink_rejected"].values()) == sent          # every one counted, exactly
    assert st["connected"] and st["downlink_applied"]["components"] == 1
    assert docs == [{"vin": "VIN-9", "components": [{"component": "alternator", "note": "made in 1985"}]}]
    assert alerts.list() == before                                 # alerts unchanged
    assert slot.installed == []                                    # models unchanged; refusals on status
    assert all(m["outcome"] == "refused" for m in st["models"].values()), st["models"]
    assert {"ack:bad_json", "components:oversize", "model:bad_signature", "ack:unknown_alert"} <= set(
        st["downlink_rejected"]), st["downlink_rejected"]


def test_cloud_ack_acknowledges_alert(agent, broker):
    sync, alerts, slot, docs = agent
    a, _ = alerts.raise_or_update("battery:B2", "battery", "warning", "Battery", "soon", {})
    cloud = Cloud(broker)
    cloud.send(T.ack_topic(VID), T.ack_message(VID, a["id"], by="fleet-app"))
    wait_until(lambda: alerts.get(a["id"])["state"] == "acknowledged", 10, what="ack applied")
    assert alerts.get(a["id"])["acknowledged_by"] == "fleet-app"
    # After a lost connection the flag drops, and once it is back an ack sent at once still lands:
    # "downlink_live" means the broker granted the subscription, not just the CONNACK.
    b, _ = alerts.raise_or_update("battery:B3", "battery", "warning", "Battery", "soon", {})
    connects = sync.status()["connects"]
    sync._client.disconnect()
    wait_until(lambda: sync.status()["connects"] > connects, 10, what="reconnect")
    wait_until(lambda: sync.status()["downlink_live"], 10, what="downlink subscribed again")
    cloud.send(T.ack_topic(VID), T.ack_message(VID, b["id"], by="fleet-app"))
    wait_until(lambda: alerts.get(b["id"])["state"] == "acknowledged", 10, what="ack after reconnect applied")
    cloud.close()


def test_model_announcements_verified_before_swap(agent, broker, tmp_path):
    from export.bundle import generate_keypair
    from tests.release_support import release_announcement, release_messages
    sync, alerts, slot, docs = agent
    cloud = Cloud(broker)
    topic = T.model_topic("battery")
    generate_keypair(tmp_path / "rogue.pem", tmp_path / "rogue.pub")

    # 1. release correctly signed, but the bundle inside is signed by a key the car does not trust
    d = make_bundle(tmp_path, "2.0.0", 3.0, key_path=tmp_path / "rogue.pem")
    cloud.send(topic, release_announcement("battery", d, 1), retain=True)
    wait_until(lambda: sync.status()["models"].get("battery", {}).get("version") == "2.0.0", 10, what="outcome")
    assert sync.status()["models"]["battery"]["outcome"] == "refused"
    assert "signature" in sync.status()["models"]["battery"]["reason"]
    assert slot.installed == []

    # 2. a trusted bundle whose release metadata is signed by an untrusted key -> refused
    d = make_bundle(tmp_path, "2.1.0", 4.0)
    cloud.send(topic, release_announcement("battery", d, 2, keys=[tmp_path / "rogue.pem"]), retain=True)
    wait_until(lambda: "bad_signature" in sync.status()["models"]["battery"].get("reason", ""), 10, what="outcome")
    assert sync.status()["models"]["battery"]["outcome"] == "refused" and slot.installed == []

    # 3. correct -> swapped in and used by the next inference; outcome on the status topic
    d = make_bundle(tmp_path, "2.2.0", 5.0)
    cloud.send(topic, release_announcement("battery", d, 3), retain=True)
    wait_until(lambda: sync.status()["models"]["battery"]["outcome"] == "installed", 10, what="install")
    assert slot.installed == ["2.2.0"]
    assert slot.infer(2.0) == pytest.approx(10.0)
    wait_until(lambda: cloud.status.get("models", {}).get("battery", {}).get("outcome") == "installed", 10,
               what="outcome on the retained status topic")

    # 4. chunked (small broker message limit): retained chunks published before the
    #    announcement are fetched once the announcement's release has verified
    d = make_bundle(tmp_path, "2.3.0", 6.0)
    msgs = release_messages("battery", d, 4, chunk_bytes=700)
    assert len(msgs) > 4
    for ctopic, chunk in reversed(msgs[:-1]):
        cloud.send(ctopic, chunk, retain=True)
    cloud.send(*msgs[-1], retain=True)
    wait_until(lambda: slot.installed == ["2.2.0", "2.3.0"], 10, what="chunked install")
    assert slot.infer(2.0) == pytest.approx(12.0)
    #    ... and a tampered chunk is caught by the signed sha256 of the assembled tar
    d = make_bundle(tmp_path, "2.4.0", 7.0)
    msgs = release_messages("battery", d, 5, chunk_bytes=700)
    bad = dict(msgs[1][1], data=base64.b64encode(b"X" * 700).decode())
    for ctopic, chunk in [msgs[0], (msgs[1][0], bad), *msgs[2:-1]]:
        cloud.send(ctopic, chunk, retain=True)
    cloud.send(*msgs[-1])
    wait_until(lambda: sync.status()["models"]["battery"]["version"] == "2.4.0", 10, what="outcome")
    assert sync.status()["models"]["battery"]["outcome"] == "refused"
    assert "sha256" in sync.status()["models"]["battery"]["reason"]
    assert slot.installed == ["2.2.0", "2.3.0"]

    # 5. the retained (chunked 2.3.0) announcement comes again after a reconnect: not installed
    #    twice, and not counted as an attack (it is the release the car runs)
    rejected = sum(sync.status()["downlink_rejected"].values())
    sync._client.disconnect()
    wait_until(lambda: sync.status()["connects"] >= 2 and sync.status()["connected"], 10, what="reconnect")
    threading.Event().wait(0.5)
    assert slot.installed == ["2.2.0", "2.3.0"]
    assert sum(sync.status()["downlink_rejected"].values()) == rejected
    cloud.send(topic, b"", retain=True)          # clear the retained message (rejected as empty, counted)
    cloud.close()


def test_status_online_offline_and_last_will(tmp_path, broker):
    import socket
    cloud = Cloud(broker)
    store = open_store(tmp_path / "state")
    sync = Sync(agent_cfg(tmp_path / "state", broker.host, broker.port, VID), store,
                backoff_min=3.0, backoff_max=3.0).start()
    wait_until(lambda: cloud.status.get("state") == "online", 10, what="retained online status")
    assert {"outbox", "downlink_rejected", "models"} <= set(cloud.status)
    sync._client.socket().shutdown(socket.SHUT_RDWR)          # connection lost without DISCONNECT
    wait_until(lambda: cloud.status.get("state") == "offline", 10, what="last will")
    assert cloud.status["reason"] == "connection lost"
    wait_until(lambda: cloud.status.get("state") == "online", 15, what="back online after the backoff")
    sync.stop()                                                # clean stop: explicit offline status
    wait_until(lambda: cloud.status.get("state") == "offline" and "reason" not in cloud.status, 10,
               what="clean offline status")
    cloud.close()
