"""Attacks on the model downlink by someone who can publish on the broker (retained too), against
a real mosquitto and a real `trey-agent run` process. Each is refused with its reason on the
retained status topic while the serving model stays; the memory attacks of issue 10 (compression
bombs, tars with 100k members, bogus retained chunks) cost the agent no more than its budget, at
run time and at every boot after; a release refused after its metadata verified is remembered
and not downloaded again on the next boot."""

from __future__ import annotations

import base64
import bz2
import gzip
import io
import json
import shutil
import tarfile
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from agent import topics as T
from agent.release_metadata import DEV_ROOT
from tests.conftest import wait_until
from tests.daemon_support import agent_config, hmi_port, http, start_agent_process, stop_process, wait_ready
from tests.release_support import release_announcement, release_messages, resigned_bundle

VID = "TEST-CAR-1"
PEAK_RSS_BOUND_KB = 120 * 1024      # issue 10's soak bound; the unit's MemoryMax is 160 MB


class Cloud:
    """The attacker's (and the cloud's) paho client, also watching the car's retained status."""

    def __init__(self, broker):
        self.status: dict = {}
        self._lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"cloud-{id(self)}", protocol=mqtt.MQTTv5)
        self.c.on_message = self._on_message
        self.c.connect(broker.host, broker.port)
        self.c.subscribe(T.status_topic(VID), 1)
        self.c.loop_start()

    def _on_message(self, client, userdata, m):
        if m.payload:
            with self._lock:
                self.status = json.loads(m.payload)

    def send(self, topic, payload, retain=False):
        data = T.encode(payload) if isinstance(payload, dict) else payload
        self.c.publish(topic, data, qos=1, retain=retain).wait_for_publish(10)

    def battery(self) -> dict:
        with self._lock:
            return dict((self.status.get("models") or {}).get("battery") or {})

    def wait_reason(self, text: str, slot: str = "battery", timeout: float = 20.0) -> dict:
        def got():
            with self._lock:
                m = (self.status.get("models") or {}).get(slot) or {}
            return m if text in (m.get("reason") or "") else None
        return wait_until(got, timeout, what=f"status {slot} reason containing {text!r}: {self.status.get('models')}")

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def _vmhwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _signed_blob_release(slot: str, version: int, blob: bytes) -> dict:
    """A release correctly signed by the (dev) release key whose target is `blob`: what a
    compromised build or a careless release of a bad archive looks like."""
    from export.bundle import DEV_SIGNING_KEY
    from export.release import release_doc
    rel = release_doc(slot, version, blob, {"name": "battery-forecaster", "version": f"{version}.0.0"},
                      [DEV_SIGNING_KEY])
    return {"schema": 1, "msg_id": T.new_msg_id(), "name": slot, "release": rel,
            "bundle": base64.b64encode(blob).decode()}


def _start(tmp_path, broker, log):
    cfg = agent_config(tmp_path, extra="\n".join(["[mqtt]", f'host = "{broker.host}"', f"port = {broker.port}"]))
    proc = start_agent_process(cfg, log_path=log)
    port = hmi_port(cfg)
    wait_ready(port, proc, log)
    return proc, port


def _serving(port) -> dict:
    m = http("GET", f"http://127.0.0.1:{port}/api/health")[1]["models"]["battery"]
    return {"version": m["version"], "sha256": m["sha256"]}


def test_release_attacks_refused_with_reason_serving_model_unchanged(tmp_path, broker):
    from export.bundle import DEV_SIGNING_KEY, generate_keypair
    from export.release import DEV_ROOT_KEY, update_root

    log = tmp_path / "agent.log"
    proc, port = _start(tmp_path, broker, log)
    cloud = Cloud(broker)
    topic = T.model_topic("battery")
    try:
        # the cloud releases 5.0.0 as release 5: installed (the baseline every attack must not change)
        v5 = resigned_bundle(tmp_path, "5.0.0")
        cloud.send(topic, release_announcement("battery", v5, 5), retain=True)
        wait_until(lambda: _serving(port)["version"] == "5.0.0", 20, what="release 5 installed")
        serving = _serving(port)
        rel = wait_until(lambda: http("GET", f"http://127.0.0.1:{port}/api/health")[1]["models"]["battery"]["release"],
                         10, what="accepted release on health")
        assert rel["version"] == 5 and rel["expired"] is False

        # 1. older version, correctly signed (a fleet rollback to a flawed model)
        cloud.send(topic, release_announcement("battery", resigned_bundle(tmp_path, "3.0.0"), 3))
        cloud.wait_reason("rollback")
        # 2. the same version re-sent (live, not a retained re-delivery)
        cloud.send(topic, release_announcement("battery", resigned_bundle(tmp_path, "5.0.1"), 5))
        cloud.wait_reason("replay")
        # 3. expired metadata (a frozen / withheld update served late)
        cloud.send(topic, release_announcement("battery", resigned_bundle(tmp_path, "6.0.0"), 6, expires_days=-1))
        cloud.wait_reason("expired")
        # 4. a bundle released for the other slot, published on the battery topic (mix-and-match)
        comp = resigned_bundle(tmp_path, "6.0.0", source=__import__("agent.bundle").bundle.DEFAULT_COMPLIANCE_BUNDLE)
        cross = release_announcement("compliance", comp, 6)
        cloud.send(topic, {**cross, "name": "battery"})
        cloud.wait_reason("wrong_slot")
        # 5. bundle bytes that differ from the signed metadata: same length, one byte flipped ...
        good = release_announcement("battery", resigned_bundle(tmp_path, "6.0.0"), 6)
        tar = bytearray(base64.b64decode(good["bundle"]))
        tar[len(tar) // 2] ^= 0xFF
        cloud.send(topic, {**good, "bundle": base64.b64encode(bytes(tar)).decode()})
        cloud.wait_reason("sha256_mismatch")
        #    ... and a different length (checked first, before hashing)
        cloud.send(topic, {**good, "msg_id": T.new_msg_id(), "bundle": base64.b64encode(bytes(tar[:-512])).decode()})
        cloud.wait_reason("length_mismatch")
        assert _serving(port) == serving

        # 6. key management: a new release key (root 2) works; once revoked (root 3) it is refused
        trust = tmp_path / "trust"
        trust.mkdir()
        shutil.copy(DEV_ROOT, trust / "root.1.json")
        generate_keypair(tmp_path / "k2.pem", tmp_path / "k2.pub")
        update_root(trust, [DEV_ROOT_KEY], add_targets=[tmp_path / "k2.pub"])
        from export.release import chain
        cloud.send(T.ROOT_TOPIC, T.root_message(chain(trust)), retain=True)
        wait_until(lambda: (cloud.status.get("models") or {}).get("root", {}).get("version") == 2, 20, what="root 2")
        cloud.send(topic, release_announcement("battery", resigned_bundle(tmp_path, "7.0.0"), 7,
                                               keys=[tmp_path / "k2.pem"]), retain=True)
        wait_until(lambda: _serving(port)["version"] == "7.0.0", 20, what="release 7 signed by the new key installed")
        update_root(trust, [DEV_ROOT_KEY], revoke=[tmp_path / "k2.pub"])
        cloud.send(T.ROOT_TOPIC, T.root_message(chain(trust)), retain=True)
        wait_until(lambda: (cloud.status.get("models") or {}).get("root", {}).get("version") == 3, 20, what="root 3")
        serving = _serving(port)
        cloud.send(topic, release_announcement("battery", resigned_bundle(tmp_path, "8.0.0"), 8,
                                               keys=[tmp_path / "k2.pem"]))
        cloud.wait_reason("revoked_key")
        assert _serving(port) == serving

        # 7. root rotation: refused unless signed by the old root's threshold; accepted when it is
        generate_keypair(tmp_path / "r2.pem", tmp_path / "r2.pub")
        generate_keypair(tmp_path / "rogue.pem", tmp_path / "rogue.pub")
        bad_dir = tmp_path / "trust-bad"
        shutil.copytree(trust, bad_dir)
        update_root(bad_dir, [tmp_path / "rogue.pem", tmp_path / "r2.pem"], root_keys=[tmp_path / "r2.pub"])
        cloud.send(T.ROOT_TOPIC, T.root_message(chain(bad_dir)))
        cloud.wait_reason("root_threshold", slot="root")
        update_root(trust, [DEV_ROOT_KEY, tmp_path / "r2.pem"], root_keys=[tmp_path / "r2.pub"])
        cloud.send(T.ROOT_TOPIC, T.root_message(chain(trust)), retain=True)
        wait_until(lambda: (cloud.status.get("models") or {}).get("root", {}).get("version") == 4, 20,
                   what=f"rotated root 4 accepted: {cloud.status.get('models')}")
        #    releases signed by the (unchanged) dev release key still install under the rotated root
        cloud.send(topic, release_announcement("battery", resigned_bundle(tmp_path, "9.0.0"), 9), retain=True)
        wait_until(lambda: _serving(port)["version"] == "9.0.0", 20, what="release 9 under root 4")
        serving = _serving(port)

        # 8. an endless / oversized chunked download: cut as soon as it exceeds the signed length
        msgs = release_messages("battery", resigned_bundle(tmp_path, "10.0.0"), 10, chunk_bytes=16 * 1024)
        big = dict(msgs[0][1], data=base64.b64encode(b"\0" * 256 * 1024).decode())
        for ctopic, chunk in [(msgs[0][0], big), *msgs[1:-1]]:
            cloud.send(ctopic, chunk, retain=True)
        cloud.send(*msgs[-1])
        cloud.wait_reason("exceed the signed length")
        assert _serving(port) == serving
        last = http("GET", f"http://127.0.0.1:{port}/api/health")[1]["models"]["battery"]["last_refused"]
        assert "exceed the signed length" in last["reason"] and last["release"] == 10
        assert proc.poll() is None
        text = log.read_text()
        assert "Traceback" not in text
    finally:
        cloud.close()
        rc, _ = stop_process(proc)
    assert rc == 0


def test_memory_attacks_cheap_now_and_at_every_boot(tmp_path, broker):
    """Issue 10 item 1 (model-announcement half): every attack payload is retained, so it comes
    back at each start; the agent's peak RSS stays within budget each time."""
    log = tmp_path / "agent.log"
    cloud = Cloud(broker)
    zeros = 512 * 1024 * 1024
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", compresslevel=9) as fh:
        chunk = b"\0" * (1 << 20)
        for _ in range(zeros >> 20):
            fh.write(chunk)
    gzip_bomb = gz.getvalue()                                      # ~0.5 MB -> 512 MB
    bz2_bomb = bz2.compress(b"\0" * (64 << 20), 9)                 # a few hundred bytes -> 64 MB
    many = io.BytesIO()                                            # 100k members, gzip'd
    with tarfile.open(fileobj=many, mode="w:gz") as tar:
        for i in range(100_000):
            tar.addfile(tarfile.TarInfo(f"m{i}"), io.BytesIO(b""))
    many_members = many.getvalue()
    assert len(gzip_bomb) < 1 << 20 and len(many_members) < 2 << 20

    def fake_release(slot, blob):
        return {"signed": {"_type": "release", "spec": "trey-release/1", "slot": slot, "version": 99,
                           "expires": "2999-01-01T00:00:00Z", "target": {"length": len(blob), "sha256": "0" * 64}},
                "signatures": [{"keyid": "0" * 64, "sig": base64.b64encode(b"\0" * 64).decode()}]}

    def unsigned(slot, blob):
        return {"schema": 1, "msg_id": T.new_msg_id(), "name": slot, "release": fake_release(slot, blob),
                "bundle": base64.b64encode(blob).decode()}

    # retained: signed by the release key (a bad build) -> length + hash verified, then refused
    # unopened (compressed), and remembered so the next boot does not fetch it again
    attacks = [(T.model_topic("battery"), _signed_blob_release("battery", 20, gzip_bomb)),
               (T.model_topic("compliance"), _signed_blob_release("compliance", 20, many_members))]
    # retained bombs on slots the car does not have, and bogus chunks for 30 names x 3 x 1 MB
    # (never announced: the agent does not even subscribe to them)
    attacks += [(T.model_topic(f"evil{i}"), unsigned(f"evil{i}", b)) for i, b in enumerate((gzip_bomb, bz2_bomb))]
    blob = base64.b64encode(b"\1" * (1 << 20)).decode()
    attacks += [(T.model_chunk_topic(f"bogus{n}", i), {"schema": 1, "msg_id": T.new_msg_id(), "name": f"bogus{n}",
                                                       "sha256": "1" * 64, "index": i, "data": blob})
                for n in range(30) for i in range(3)]
    for t, p in attacks:
        cloud.send(t, p, retain=True)

    def models(port):
        return http("GET", f"http://127.0.0.1:{port}/api/health")[1]["mqtt"].get("models") or {}

    def refused(port, text):
        m = models(port)
        return m if all(text in (m.get(s) or {}).get("reason", "") for s in ("battery", "compliance")) else None

    peaks, reasons = [], []
    try:
        for boot in range(2):
            proc, port = _start(tmp_path, broker, log)
            try:
                m = wait_until(lambda: refused(port, "compressed"), 30, what=f"signed bombs refused: {models(port)}")
                reasons.append({s: m[s]["reason"] for s in ("battery", "compliance")})
                if boot == 0:
                    # live (not retained) unsigned bombs on the real slots: refused at the metadata
                    for slot, b in (("battery", gzip_bomb), ("compliance", bz2_bomb)):
                        cloud.send(T.model_topic(slot), unsigned(slot, b))
                    wait_until(lambda: refused(port, "bad_signature"), 20, what="unsigned bombs refused")
                else:
                    # a valid release still installs afterwards (the agent is not wedged)
                    cloud.send(T.model_topic("battery"), release_announcement(
                        "battery", resigned_bundle(tmp_path, "21.0.0"), 21), retain=True)
                    wait_until(lambda: _serving(port)["version"] == "21.0.0", 20, what="valid release after attacks")
                peaks.append(_vmhwm_kb(proc.pid))
                assert proc.poll() is None
            finally:
                rc, _ = stop_process(proc)
            assert rc == 0
    finally:
        for t, _ in attacks:
            cloud.send(t, b"", retain=True)
        cloud.close()
    print(f"peak RSS per boot: {[p // 1024 for p in peaks]} MB; refusals: {reasons}")
    assert all(p < PEAK_RSS_BOUND_KB for p in peaks), peaks
    # first boot: verified, opened as an uncompressed tar only, refused; second boot: refused
    # from the persisted record without decoding the bundle
    assert not any(r.startswith("previously") for r in reasons[0].values()), reasons
    assert all(r.startswith("previously refused") for r in reasons[1].values()), reasons
    assert "Traceback" not in log.read_text()


@pytest.fixture
def broker(tmp_path):
    from tests.conftest import Broker
    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()
