"""Model bundles in the running agent: a tampered or wrongly signed bundle is refused while the
previous model keeps serving; a good new bundle replaces it (file swapped in place, or
SIGHUP); a swap never exposes a half-built model to inference."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import tarfile
import threading

import pytest

from agent.bundle import DEFAULT_BATTERY_BUNDLE, DEFAULT_COMPLIANCE_BUNDLE, MANIFEST, MODEL, verify_bundle
from tests.conftest import wait_until
from tests.daemon_support import (agent_config, hmi_port, http, start_agent_process, stop_process, wait_ready,
                                  write_spec)

needs_compliance = pytest.mark.skipif(not (DEFAULT_COMPLIANCE_BUNDLE / MANIFEST).exists(),
                                      reason="shipped compliance bundle agent/models/compliance not built yet")


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _place(path, data: bytes) -> None:
    """Replace the bundle file atomically (what an installer does)."""
    tmp = path.with_suffix(".partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _resigned(tmp_path, version: str, key=None, source=DEFAULT_COMPLIANCE_BUNDLE) -> bytes:
    """A shipped bundle with a new version, re-signed (dev key by default), as a tar."""
    from export.bundle import sign_dir
    d = tmp_path / f"b-{source.name}-{version}"
    shutil.copytree(source, d)
    m = json.loads((d / MANIFEST).read_text())
    m["version"] = version
    (d / MANIFEST).write_text(json.dumps(m))
    sign_dir(d, key)
    return _tar({f.name: f.read_bytes() for f in d.iterdir()})


@needs_compliance
def test_bad_bundles_refused_good_ones_swapped(tmp_path):
    from export.bundle import generate_keypair
    shipped = {f.name: f.read_bytes() for f in DEFAULT_COMPLIANCE_BUNDLE.iterdir() if f.is_file()}
    bundle_path = tmp_path / "compliance.tar"
    bundle_path.write_bytes(_tar(shipped))
    spec = write_spec(tmp_path / "components.jsonl")
    cfg = agent_config(tmp_path, spec=spec, compliance=str(bundle_path))
    port = hmi_port(cfg)
    log = tmp_path / "agent.log"
    api = f"http://127.0.0.1:{port}/api"
    proc = start_agent_process(cfg, log_path=log)

    def model():
        return http("GET", f"{api}/health")[1]["models"]["compliance"]

    try:
        wait_ready(port, proc, log)
        first = model()
        assert first["sha256"] == verify_bundle(DEFAULT_COMPLIANCE_BUNDLE).sha256 and first["refused"] == 0

        # 1. Tampered model bytes (signature still fine, hash not): refused on SIGHUP.
        tampered = dict(shipped)
        body = bytearray(tampered[MODEL])
        body[len(body) // 2] ^= 0xFF
        tampered[MODEL] = bytes(body)
        _place(bundle_path, _tar(tampered))
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: model()["refused"] >= 1, 10, what="tampered bundle refused")
        m = model()
        assert m["sha256"] == first["sha256"] and "sha256 mismatch" in m["last_error"]
        # ... and the old model keeps serving: a new note (SIGHUP re-reads the spec) is classified.
        with open(spec, "a") as fh:
            fh.write(json.dumps({"vin": "WVWZZZ1JZXW000001", "components": [
                {"component": "fuel pump", "note": "manufactured in 1979 made of iron in poor condition"}]}) + "\n")
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: any(c["component"] == "fuel pump" and not c["compliant"]
                             for c in http("GET", f"{api}/components")[1]), 10, what="new note classified")
        assert any(a["title"].lower().startswith("fuel pump") for a in http("GET", f"{api}/alerts")[1])

        # 2. Signed by a key the car does not trust: refused, picked up by the file poll.
        generate_keypair(tmp_path / "rogue.pem", tmp_path / "rogue.pub")
        refused = model()["refused"]
        _place(bundle_path, _resigned(tmp_path, "6.6.6-rogue", key=tmp_path / "rogue.pem"))
        wait_until(lambda: model()["refused"] > refused, 10, what="rogue bundle refused")
        assert model()["sha256"] == first["sha256"] and "signature" in model()["last_error"]

        # 3. A good new version dropped in place: loaded, notes re-classified with it.
        _place(bundle_path, _resigned(tmp_path, "9.9.9-test"))
        wait_until(lambda: model()["version"] == "9.9.9-test", 10, what="new bundle loaded")
        assert model()["last_error"] == ""
        wait_until(lambda: all(c["model"].endswith("@9.9.9-test") for c in http("GET", f"{api}/components")[1]),
                   10, what="components re-classified with the new model")
        text = log.read_text()
        assert text.count("compliance bundle refused") >= 3 and "still serving" in text
    finally:
        rc, _ = stop_process(proc)
    assert rc == 0


def test_swap_is_atomic_under_concurrent_inference(tmp_path):
    """Inference threads hammer a slot while it is swapped back and forth between two
    versions; every call sees a complete model and the label of the model it used."""
    from datetime import date

    from agent.daemon import ModelSlot, _battery_factory
    from can_sim import Simulator
    rows = Simulator("aging", seed=4, start=date(2024, 1, 1), days=70, battery_cycles=80.0).truth()
    a = tmp_path / "battery.tar"
    a_bytes = _resigned(tmp_path, "1.0.0-a", source=DEFAULT_BATTERY_BUNDLE)
    b_bytes = _resigned(tmp_path, "2.0.0-b", source=DEFAULT_BATTERY_BUNDLE)
    a.write_bytes(a_bytes)
    slot = ModelSlot("battery", a, None, _battery_factory)
    assert slot.load()
    expected = slot.model.forecast(rows)["forecast_daily_cycles"]     # same weights in both versions
    errors, calls = [], [0]
    stop = threading.Event()

    def infer():
        while not stop.is_set():
            try:
                model, label = slot.current()
                out = model.forecast(rows)
                assert out["forecast_daily_cycles"] == expected
                assert out["model"]["version"] == label.rsplit("@", 1)[1]   # model and label from one snapshot
                calls[0] += 1
            except Exception as exc:   # collected, asserted below
                errors.append(exc)

    threads = [threading.Thread(target=infer) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(10):
            _place(a, b_bytes if i % 2 == 0 else a_bytes)
            assert slot.load()
            assert slot.bundle.version == ("2.0.0-b" if i % 2 == 0 else "1.0.0-a")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not errors, errors[:3]
    assert calls[0] > 10


def test_cloud_bundle_with_default_trusted_keys(tmp_path):
    """Default config (no [models] trusted_keys = the shipped keys): a bundle pushed from the
    cloud and signed with a trusted key is installed; one signed by another key is refused
    and the current model keeps serving."""
    from agent.config import load_config
    from agent.daemon import Agent
    from export.bundle import generate_keypair
    cfg = tmp_path / "agent.toml"
    cfg.write_text("\n".join(["[vehicle]", 'id = "CAR-KEYS"', "[can]", 'interface = "virtual"',
                              'channel = "keys-test"', "[state]", f'dir = "{tmp_path / "state"}"',
                              "[hmi]", "enabled = false"]) + "\n")
    agent = Agent(load_config(cfg), install_signals=False)
    agent.start()
    try:
        shipped = agent.battery_slot.bundle.version
        generate_keypair(tmp_path / "rogue.pem", tmp_path / "rogue.pub")
        rogue = _untar(_resigned(tmp_path, "9.9.9-rogue", tmp_path / "rogue.pem", DEFAULT_BATTERY_BUNDLE))
        assert agent.install_bundle("battery", rogue) is False
        assert agent.battery_slot.bundle.version == shipped
        assert "signature" in agent.battery_slot.last_error
        good = _untar(_resigned(tmp_path, "9.9.9-good", None, DEFAULT_BATTERY_BUNDLE))
        assert agent.install_bundle("battery", good) is True
        assert agent.battery_slot.bundle.version == "9.9.9-good"
    finally:
        agent.shutdown()


def _untar(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
