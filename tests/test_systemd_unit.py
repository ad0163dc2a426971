"""systemd/trey-agent.service: systemd-analyze verify accepts it, and it carries the
notify/watchdog/hardening settings the head unit relies on."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import tomllib

import pytest

from agent.config import config_from_dict
from tests.conftest import ROOT

UNIT = ROOT / "systemd" / "trey-agent.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _unit() -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    cp.optionxform = str
    cp.read(UNIT)
    return cp


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed (apt-get install systemd)")
def test_systemd_analyze_verify(tmp_path):
    agent_bin = shutil.which("trey-agent")
    assert agent_bin, "trey-agent console script not installed (pip install -e .)"
    # The unit points at the install location on the head unit; verify a copy whose
    # ExecStart is the trey-agent installed here (verify checks the binary exists).
    text = UNIT.read_text()
    assert "ExecStart=/usr/local/bin/trey-agent run --config /etc/trey/agent.toml" in text
    unit = tmp_path / "trey-agent.service"
    unit.write_text(text.replace("/usr/local/bin/trey-agent", agent_bin))
    res = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (res.stdout + res.stderr).splitlines() if "trey-agent.service" in line]
    assert res.returncode == 0 and not complaints, res.stdout + res.stderr


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed (apt-get install systemd)")
def test_systemd_analyze_catches_a_broken_unit(tmp_path):
    # The check above can fail: a bad value is reported against the unit file.
    unit = tmp_path / "trey-agent.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/trey-agent", shutil.which("trey-agent") or "/bin/true")
                    .replace("WatchdogSec=10", "WatchdogSec=soon"))
    res = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert "WatchdogSec" in res.stderr or "soon" in res.stderr


def test_unit_settings():
    svc = _unit()["Service"]
    assert svc["Type"] == "notify"
    assert int(svc["WatchdogSec"]) > 0
    assert svc["Restart"] == "on-failure"
    assert svc["StateDirectory"] == "trey" and svc["ConfigurationDirectory"] == "trey"
    assert svc["DynamicUser"] == "yes"
    for key, value in (("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("NoNewPrivileges", "yes"),
                       ("PrivateTmp", "yes")):
        assert svc[key] == value, key
    assert set(svc["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_CAN"}
    assert svc["CapabilityBoundingSet"] == ""
    assert svc["MemoryMax"].endswith("M")
    assert "kill -HUP $MAINPID" in svc["ExecReload"]


def test_example_config_is_valid(tmp_path):
    raw = tomllib.loads((ROOT / "systemd" / "agent.toml.example").read_text())
    # Files that exist only on a head unit: point them at real local stand-ins.
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copy(ROOT / "agent" / "keys" / "dev_trusted.pem", keys)
    spec = tmp_path / "components.jsonl"
    spec.write_text("")
    raw["models"]["trusted_keys"] = [str(keys)]
    raw["components"]["spec"] = str(spec)
    cfg = config_from_dict(raw)
    assert cfg.state.dir == "/var/lib/trey"        # = StateDirectory=trey
    assert cfg.hmi.listen.startswith("127.0.0.1:")  # loopback by default
    assert cfg.mqtt is None
