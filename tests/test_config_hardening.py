"""Config input that used to escape validation (issue #10 item 7): `trey-agent run` answers
each with ONE clear line naming the problem and exit 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.daemon_support import AGENT_ENV, agent_config


def _run(cfg):
    return subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(cfg)], cwd=ROOT, env=AGENT_ENV,
                          capture_output=True, text=True, timeout=60)


def _one_line(res, *words):
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("trey-agent run:")]
    assert len(lines) == 1 and all(w in lines[0] for w in words), res.stderr


@pytest.mark.parametrize("vid", ['"CAR\\n"', '"CAR/1"', '"+"', '".."', '"CAR\\u0000"'])
def test_vehicle_id_is_fullmatched(tmp_path, vid):
    cfg = agent_config(tmp_path)
    cfg.write_text(cfg.read_text().replace('id = "TEST-CAR-1"', f"id = {vid}"))
    _one_line(_run(cfg), "vehicle.id")


def test_unknown_can_interface(tmp_path):
    _one_line(_run(agent_config(tmp_path, interface="nosuchbus")), "can.interface", "nosuchbus")


def test_non_utf8_toml(tmp_path):
    cfg = agent_config(tmp_path)
    cfg.write_bytes(cfg.read_bytes().replace(b"TEST-CAR-1", b"TEST-\xff-1"))
    _one_line(_run(cfg), "not UTF-8")


def test_directory_as_config(tmp_path):
    _one_line(_run(tmp_path), "is a directory")


def test_bad_hmi_limit_named(tmp_path):
    cfg = agent_config(tmp_path)
    cfg.write_text(cfg.read_text().replace("[hmi]\n", "[hmi]\nmax_connections = 0\n"))
    _one_line(_run(cfg), "hmi.max_connections")
