"""The contracts the agent owns: signal map, bundle verification, config validation."""

from __future__ import annotations

import base64
import json
import shutil

import pytest

from agent import signals
from agent.bundle import BundleError, verify_bundle
from agent.config import ConfigError, config_from_dict, load_config
from agent.signal_map import SignalMapError, load_signal_map
from export.bundle import build_bundle, generate_keypair, tar_bundle


def test_shipped_map_binds_every_canonical_signal():
    sm = load_signal_map()
    assert set(sm.bindings) == set(signals.ALL)
    # every binding resolves to a real DBC signal
    for b in sm.bindings.values():
        assert sm.db.get_message_by_frame_id(b.frame_id).get_signal_by_name(b.signal)
    state = sm.message(signals.SYSTEM_STATE).get_signal_by_name("LowVoltageSystemState")
    assert {str(v) for v in state.choices.values()} == set(signals.SYSTEM_STATES)


def test_signal_map_errors_name_the_entry(tmp_path):
    bad = tmp_path / "map.toml"
    bad.write_text('[signals."Vehicle.Speed"]\nmessage = "NoSuchMsg"\nsignal = "x"\n')
    with pytest.raises(SignalMapError, match="NoSuchMsg"):
        load_signal_map(signal_map=bad)
    bad.write_text('[signals."Vehicle.Bogus"]\nmessage = "IBS_Status"\nsignal = "IBS_Voltage"\n')
    with pytest.raises(SignalMapError, match="Vehicle.Bogus"):
        load_signal_map(signal_map=bad)


@pytest.fixture
def bundle_dir(tmp_path):
    d = build_bundle(tmp_path / "b", b"fake-onnx-bytes", {"name": "t", "version": "1"},
                     extra_files={"vocab.json": b"{}"})
    return d


def test_bundle_roundtrip_dir_and_tar(bundle_dir, tmp_path):
    b = verify_bundle(bundle_dir)
    assert b.model_bytes == b"fake-onnx-bytes" and b.files["vocab.json"] == b"{}"
    tar = tmp_path / "b.tar"
    tar.write_bytes(tar_bundle(bundle_dir))
    assert verify_bundle(tar).sha256 == b.sha256


@pytest.mark.parametrize("tamper", ["model", "manifest", "extra_file", "missing_file", "sig"])
def test_tampered_bundle_is_refused(bundle_dir, tamper):
    if tamper == "model":
        (bundle_dir / "model.onnx").write_bytes(b"evil")
    elif tamper == "manifest":
        m = json.loads((bundle_dir / "manifest.json").read_text())
        m["version"] = "2"
        (bundle_dir / "manifest.json").write_text(json.dumps(m))
    elif tamper == "extra_file":
        (bundle_dir / "payload.py").write_text("import os")
    elif tamper == "missing_file":
        (bundle_dir / "vocab.json").unlink()
    elif tamper == "sig":
        (bundle_dir / "manifest.sig").write_text(base64.b64encode(b"\0" * 64).decode())
    with pytest.raises(BundleError):
        verify_bundle(bundle_dir)


def test_bundle_signed_by_untrusted_key_is_refused(tmp_path):
    generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    d = build_bundle(tmp_path / "b", b"m", {"name": "t", "version": "1"}, key_path=tmp_path / "k.pem")
    with pytest.raises(BundleError, match="trusted"):
        verify_bundle(d)                       # default = dev key only
    assert verify_bundle(d, tmp_path / "k.pub").version == "1"


def test_config_rejects_unknown_and_bad_keys(tmp_path):
    base = {"vehicle": {"id": "car-1"}, "state": {"dir": str(tmp_path)}}
    assert config_from_dict(base).mqtt is None
    with pytest.raises(ConfigError, match="can.bogus"):
        config_from_dict({**base, "can": {"bogus": 1}})
    with pytest.raises(ConfigError, match="mqtt.port"):
        config_from_dict({**base, "mqtt": {"host": "x", "port": "1883"}})
    with pytest.raises(ConfigError, match="vehicle.id"):
        config_from_dict({**base, "vehicle": {"id": "car/+"}})
    with pytest.raises(ConfigError, match="hmi.listen"):
        config_from_dict({**base, "hmi": {"listen": "nope"}})
    p = tmp_path / "a.toml"
    p.write_text("[vehicle]\nid = 'car'\n[state]\ndir = '/tmp'\n[bogus]\n")
    with pytest.raises(ConfigError, match=r"\[bogus\]"):
        load_config(p)
