"""`trey-agent run` refuses to start cleanly (exit 2, one clear line, no traceback) on a bad
config or an HMI address already taken."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.conftest import ROOT
from tests.daemon_support import AGENT_ENV, agent_config, hmi_port


def _run(cfg):
    return subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(cfg)], cwd=ROOT, env=AGENT_ENV,
                          capture_output=True, text=True, timeout=30)


def test_unknown_key_named(tmp_path):
    cfg = agent_config(tmp_path, extra="[hmi_extra]\nfoo = 1")
    res = _run(cfg)
    assert res.returncode == 2 and "unknown section [hmi_extra]" in res.stderr
    assert "Traceback" not in res.stderr


def test_hmi_port_in_use(tmp_path):
    cfg = agent_config(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", hmi_port(cfg)))
        s.listen()
        res = _run(cfg)
    assert res.returncode == 2 and "cannot start" in res.stderr and "Address already in use" in res.stderr
    assert "Traceback" not in res.stderr
