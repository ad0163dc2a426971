"""sd_notify protocol against a real AF_UNIX datagram socket, from a real agent process:
READY=1 once the HMI listens, WATCHDOG=1 keep-alives at half WatchdogSec, STATUS=,
STOPPING=1 on SIGTERM, exit 0."""

from __future__ import annotations

import os
import signal
import socket
import time

from tests.daemon_support import AGENT_ENV, agent_config, http, start_agent_process


def _recv_all(sock, until, timeout):
    """Collect datagrams until `until(fields)` is true or timeout; returns [(t, {k: v})]."""
    got, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(4096)
        except socket.timeout:
            break
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        got.append((time.monotonic(), fields))
        if until(fields):
            break
    return got


def test_notify_protocol(tmp_path):
    cfg = agent_config(tmp_path)
    port = int(cfg.read_text().split("127.0.0.1:")[1].split('"')[0])
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    env = {**AGENT_ENV, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"}   # WatchdogSec=1
    env.pop("WATCHDOG_PID", None)
    t0 = time.monotonic()
    proc = start_agent_process(cfg, env=env, log_path=tmp_path / "agent.log")
    try:
        msgs = _recv_all(sock, lambda f: f.get("READY") == "1", timeout=20)
        assert msgs and msgs[-1][1].get("READY") == "1", (tmp_path / "agent.log").read_text()
        ready = msgs[-1][1]
        assert ready["MAINPID"] == str(proc.pid)
        # READY means serving: the HMI answers right away.
        assert http("GET", f"http://127.0.0.1:{port}/api/health")[1]["ready"] is True
        # Keep-alives from the main loop at about half of WatchdogSec (0.5 s).
        pings = _recv_all(sock, lambda f: False, timeout=3.0)
        wd = [t for t, f in pings if f.get("WATCHDOG") == "1"]
        assert len(wd) >= 3, pings
        gaps = [b - a for a, b in zip(wd, wd[1:])]
        assert 0.4 < min(gaps) and max(gaps) < 1.0, gaps      # paced at ~WatchdogSec/2, never late enough to trip
        assert any("STATUS" in f for _, f in msgs + pings)    # STATUS= for systemctl status
        proc.send_signal(signal.SIGTERM)
        t_term = time.monotonic()
        tail = _recv_all(sock, lambda f: f.get("STOPPING") == "1", timeout=5)
        assert any(f.get("STOPPING") == "1" for _, f in tail), tail
        assert proc.wait(5) == 0
        assert time.monotonic() - t_term < 5.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
    print(f"\nready after {msgs[-1][0] - t0:.2f}s (process start -> READY=1)")


def test_no_notify_socket_is_harmless(tmp_path):
    # Outside systemd there is no $NOTIFY_SOCKET: the agent runs and stops normally;
    # and a NOTIFY_SOCKET that nobody listens on is logged, not fatal.
    env = {**AGENT_ENV, "NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")}
    cfg = agent_config(tmp_path)
    port = int(cfg.read_text().split("127.0.0.1:")[1].split('"')[0])
    proc = start_agent_process(cfg, env=env, log_path=tmp_path / "agent.log")
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if http("GET", f"http://127.0.0.1:{port}/api/health", timeout=1)[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError((tmp_path / "agent.log").read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "sd_notify" in (tmp_path / "agent.log").read_text()
    assert os.path.exists(tmp_path / "state")


def test_notify_never_blocks_on_a_reader_that_does_not_read(tmp_path):
    # A datagram queue nobody drains fills up; a blocking sendto would then stall the
    # main loop (frames, watchdog). The notifier drops instead.
    from agent.notify import Notifier
    sock_path = tmp_path / "full.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    try:
        n = Notifier(address=str(sock_path), watchdog_usec="", watchdog_pid="")
        t0 = time.monotonic()
        results = [n.status(f"frame batch {i}") for i in range(3000)]
        assert time.monotonic() - t0 < 2.0
        assert results[0] is True and results.count(False) > 0      # the queue filled, later ones dropped
        n.close()
    finally:
        sock.close()
