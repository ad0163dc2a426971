"""`trey-agent demo` as a user runs it (default speed, no broker, no CAN hardware): prints the
HMI address, the battery alert and the compliance alerts within 60 s, and Ctrl-C stops it
cleanly (exit 0)."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from agent.bundle import DEFAULT_BATTERY_BUNDLE, DEFAULT_COMPLIANCE_BUNDLE, MANIFEST
from tests.conftest import ROOT, free_port
from tests.daemon_support import AGENT_ENV, http

pytestmark = pytest.mark.skipif(
    not all((b / MANIFEST).exists() for b in (DEFAULT_BATTERY_BUNDLE, DEFAULT_COMPLIANCE_BUNDLE)),
    reason="shipped bundles agent/models/battery and agent/models/compliance not both built yet")


@pytest.mark.slow
def test_demo_alerts_within_60s_and_ctrl_c(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "agent", "demo", "--listen", f"127.0.0.1:{port}",
                             "--state", str(tmp_path / "demo")], cwd=ROOT, env=AGENT_ENV,
                            stdout=subprocess.PIPE, stderr=open(tmp_path / "demo.log", "wb"), text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout], daemon=True).start()
    t0 = time.monotonic()
    seen, out = set(), []
    try:
        while time.monotonic() - t0 < 60 and not {"hmi", "battery", "compliance"} <= seen:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert proc.poll() is None, (tmp_path / "demo.log").read_text()[-2000:]
                continue
            out.append(line.rstrip())
            if f"http://127.0.0.1:{port}/" in line:
                seen.add("hmi")
            if "BATTERY" in line and "raised" in line:
                seen.add("battery")
            if "COMPLIANCE" in line and "raised" in line:
                seen.add("compliance")
        took = time.monotonic() - t0
        print(f"\ndemo: battery + compliance alerts after {took:.1f} s\n" + "\n".join(out[:12]))
        assert {"hmi", "battery", "compliance"} <= seen, "\n".join(out)
        _, alerts = http("GET", f"http://127.0.0.1:{port}/api/alerts")
        assert {a["kind"] for a in alerts} == {"battery", "compliance"}
        proc.send_signal(signal.SIGINT)                       # Ctrl-C
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
