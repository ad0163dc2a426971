"""Agent as its own process (`trey-agent run`) on real buses: udp_multicast from `trey-sim` in another
process, SIGKILL + restart, slcan through a pty pair, socketcan with kernel filters (where vcan0 exists)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import can
import pytest

from agent.config import config_from_dict
from agent.reader import Pipeline
from agent.signal_map import load_signal_map
from agent.store import StateStore
from can_sim import Simulator, send_stream
from tests.bus_support import ROOT, diff_rows, group, pump, read_csv_rows, write_config
from tests.conftest import free_port

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


class Agent:
    """`python -m agent run --config FILE` with stderr drained in a thread."""

    def __init__(self, config: Path):
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(config)], cwd=ROOT,
                                     env=ENV, stderr=subprocess.PIPE, text=True)
        self._th = threading.Thread(target=self._drain, daemon=True)
        self._th.start()

    def _drain(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_listening(self, timeout=30.0):
        t0 = time.monotonic()
        while not any("listening on" in ln for ln in self.lines):
            assert self.proc.poll() is None, "agent exited:\n" + "".join(self.lines)
            assert time.monotonic() - t0 < timeout, "agent not listening:\n" + "".join(self.lines)
            time.sleep(0.05)
        time.sleep(0.2)     # the socket is joined before the log line; a little slack for the OS

    def stop(self, timeout=20.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self._th.join(5)
        return rc

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)
        self._th.join(5)


def _rows_stored(state: Path) -> int:
    db = state / "state.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as c:
            return c.execute("SELECT count(*) FROM daily").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _wait_rows(state: Path, n: int, proc, timeout=60.0):
    t0 = time.monotonic()
    while _rows_stored(state) < n:
        assert proc.poll() is None or proc.returncode == 0, "process died"
        assert time.monotonic() - t0 < timeout, f"only {_rows_stored(state)} of {n} rows after {timeout}s"
        time.sleep(0.05)


def _history(state: Path) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "agent", "history", "--state", str(state)], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, check=True).stdout
    return read_csv_rows(out)


def test_sim_process_to_agent_process_over_udp_multicast(tmp_path):
    g, port, days = group(), free_port(), 20
    state, truth = tmp_path / "state", tmp_path / "truth.csv"
    agent = Agent(write_config(tmp_path / "agent.toml", state, "udp_multicast", g, port=port))
    try:
        agent.wait_listening()
        sim = subprocess.run([sys.executable, "-m", "can_sim.cli", "run", "--interface", "udp_multicast",
                              "--channel", g, "--port", str(port), "--scenario", "aging", "--days", str(days),
                              "--speed", "864000", "--rate-limit", "8000", "--seed", "7", "--truth", str(truth)],
                             cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
        assert sim.returncode == 0, sim.stderr
        _wait_rows(state, days, agent.proc)
    finally:
        rc = agent.stop()
    assert rc == 0, "".join(agent.lines)
    want = read_csv_rows(truth)
    got = _history(state)
    assert len(got) == days and diff_rows(got, want) == []
    st = StateStore(state)
    assert {k: v for k, v in st.counters().items() if k in ("bad_dlc", "out_of_range", "undecodable")} == \
        {"bad_dlc": 0, "out_of_range": 0, "undecodable": 0}
    jl = subprocess.run([sys.executable, "-m", "agent", "history", "--state", str(state), "--format", "jsonl"],
                        cwd=ROOT, env=ENV, capture_output=True, text=True, check=True).stdout
    assert [json.loads(line) for line in jl.splitlines()] == st.history()
    st.close()


def test_kill_9_mid_replay_then_restart_equals_uninterrupted_run(tmp_path):
    days = 30
    sim = Simulator("sensor-faults", seed=21, days=days)
    log = tmp_path / "drive.log"
    send_stream(None, sim.frames(), speed=None, record=log)
    # the uninterrupted reference: the same log straight into a pipeline
    ref = Pipeline(load_signal_map(), StateStore(tmp_path / "ref"))
    ref.feed_many(m for m in can.LogReader(str(log)) if not m.is_error_frame)
    ref.close()
    want = ref.store.history()
    assert len(want) == days and diff_rows(want, sim.truth()) == []

    g, port, state = group(), free_port(), tmp_path / "state"
    cfg = write_config(tmp_path / "agent.toml", state, "udp_multicast", g, port=port)
    replay_cmd = [sys.executable, "-m", "can_sim.cli", "replay", str(log), "--interface", "udp_multicast",
                  "--channel", g, "--port", str(port), "--max-speed", "--rate-limit", "8000"]
    first = Agent(cfg)
    first.wait_listening()
    rp = subprocess.Popen(replay_cmd, cwd=ROOT, env=ENV, stderr=subprocess.DEVNULL)
    try:
        _wait_rows(state, days // 2, first.proc)
    finally:
        first.kill()                                        # SIGKILL mid-replay: no flush, no goodbye
        rp.send_signal(signal.SIGTERM)
        rp.wait(20)
    assert first.proc.returncode == -signal.SIGKILL
    before = _history(state)
    assert days // 2 <= len(before) < days and diff_rows(before, want[:len(before)]) == []

    second = Agent(cfg)
    try:
        second.wait_listening()
        assert subprocess.run(replay_cmd, cwd=ROOT, env=ENV, capture_output=True, timeout=120).returncode == 0
        _wait_rows(state, days, second.proc)
    finally:
        rc = second.stop()
    assert rc == 0, "".join(second.lines)
    assert any("resumed from checkpoint" in ln for ln in second.lines)
    got = StateStore(state)
    assert got.history() == want
    life = [r["Lifetime_Cycles_Used"] for r in got.history()]
    assert all(b >= a for a, b in zip(life, life[1:]))
    # frames already processed before the kill were skipped, not counted twice
    assert got.counters() == ref.store.counters()
    assert {k: got.counters()[k] for k in sim.faults()} == sim.faults()
    got.close()
    ref.store.close()


def test_slcan_through_pty_pairs(tmp_path):
    """sim -> slcan adapter (pty 1) ~serial link~ relay -> slcan adapter (pty 2) -> agent."""
    import select
    import tty
    m1, s1 = os.openpty()
    m2, s2 = os.openpty()
    for fd in (m1, m2):
        tty.setraw(fd)
    done = threading.Event()

    def relay():
        while not done.is_set():
            r, _, _ = select.select([m1], [], [], 0.1)
            if r:
                data = os.read(m1, 65536)
                while data:
                    data = data[os.write(m2, data):]

    th = threading.Thread(target=relay, daemon=True)
    th.start()
    cfg = config_from_dict({"vehicle": {"id": "T"}, "state": {"dir": str(tmp_path / "state")},
                            "can": {"interface": "slcan", "channel": os.ttyname(s2), "serial_baudrate": 115200}})
    store = StateStore(cfg.state.dir)
    pipeline = Pipeline.from_config(cfg, store)
    sim = Simulator("sensor-faults", seed=9, days=3)
    tx = can.Bus(interface="slcan", channel=os.ttyname(s1), bitrate=500000, sleep_after_open=0)
    try:
        sender = threading.Thread(target=lambda: send_stream(tx, sim.frames(), speed=None), daemon=True)
        sender.start()
        pump(pipeline, sender, 2000)
    finally:
        pipeline.close()
        tx.shutdown()
        done.set()
        th.join(5)
        for fd in (m1, s1, m2, s2):
            os.close(fd)
    assert diff_rows(store.history(), sim.truth()) == []
    assert {k: store.counters()[k] for k in sim.faults()} == sim.faults()
    store.close()


@pytest.mark.skipif(not Path("/sys/class/net/vcan0").exists(),
                    reason="socketcan: no vcan0 interface here (modprobe vcan; ip link add dev vcan0 type vcan; "
                           "ip link set up vcan0)")
def test_socketcan_vcan0_kernel_filters(tmp_path):
    cfg = config_from_dict({"vehicle": {"id": "T"}, "state": {"dir": str(tmp_path / "state")},
                            "can": {"interface": "socketcan", "channel": "vcan0"}})
    store = StateStore(cfg.state.dir)
    pipeline = Pipeline.from_config(cfg, store)
    sim = Simulator("busy-bus", seed=2, days=3)
    tx = can.Bus(interface="socketcan", channel="vcan0")
    try:
        sender = threading.Thread(target=lambda: send_stream(tx, sim.frames(), speed=None, rate_limit=20000),
                                  daemon=True)
        sender.start()
        pump(pipeline, sender, 5000)
    finally:
        pipeline.close()
        tx.shutdown()
    assert diff_rows(store.history(), sim.truth()) == []
    assert sim.faults()["unknown_id"] > 0 and store.counters()["unknown_id"] == 0   # filtered in the kernel
    store.close()


def test_cli_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[vehicle]\nid = "T"\n[can]\ninterface = "virtual"\nportt = 5\n[state]\ndir = "x"\n')
    r = subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(bad)], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "can.portt" in r.stderr
    r = subprocess.run([sys.executable, "-m", "agent", "history", "--state", str(tmp_path / "none")], cwd=ROOT,
                       env=ENV, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no agent state" in r.stderr
