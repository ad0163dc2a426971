"""SIGTERM while the bus is busy: the agent finishes its frame batch, persists the open day
(checkpoint) and exits 0 within 5 s; SIGINT behaves the same."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import pytest

from agent.store import StateStore
from tests.conftest import ROOT, free_port, wait_until
from tests.daemon_support import AGENT_ENV, agent_config, hmi_port, http, start_agent_process, wait_ready


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_under_load(tmp_path, sig):
    group = f"239.77.{random.randint(1, 250)}.{random.randint(1, 250)}"
    can_port = free_port()
    cfg = agent_config(tmp_path, interface="udp_multicast", channel=group, can_port=can_port)
    port = hmi_port(cfg)
    log = tmp_path / "agent.log"
    agent = start_agent_process(cfg, log_path=log)
    sim = None
    try:
        wait_ready(port, agent, log)
        sim = subprocess.Popen([sys.executable, "-m", "can_sim.cli", "run", "--interface", "udp_multicast",
                                "--channel", group, "--port", str(can_port), "--scenario", "busy-bus",
                                "--days", "400", "--max-speed", "--rate-limit", "5000", "--seed", "5"],
                               cwd=ROOT, env=AGENT_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: http("GET", f"http://127.0.0.1:{port}/api/health")[1]["bus"]["frames"] > 3000, 20,
                   what="frames flowing")
        t0 = time.monotonic()
        agent.send_signal(sig)
        rc = agent.wait(5)
        took = time.monotonic() - t0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        if sim is not None:
            sim.kill()
            sim.wait()
    print(f"\n{signal.Signals(sig).name} under ~5k frames/s: exit {rc} after {took:.2f} s")
    assert rc == 0 and took < 5.0, log.read_text()[-2000:]
    store = StateStore(tmp_path / "state")
    try:
        ck = store.load_checkpoint()
        assert ck is not None and ck["rollup"], "open day not persisted at shutdown"
    finally:
        store.close()
    assert "agent stopped" in log.read_text()
