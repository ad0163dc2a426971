"""`trey-agent replay LOG --config FILE [--state DIR]` as its own process: recorded logs through the
agent's pipeline, the summary, exit codes, resuming, and a glitching vehicle clock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import can
import pytest

from agent import signals as S
from agent.signal_map import load_signal_map
from agent.store import StateStore
from can_sim import Simulator
from tests.bus_support import ROOT, diff_rows

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def replay(log: Path, config: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", "replay", str(log), "--config", str(config), *extra],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def write_log(path: Path, frames) -> Path:
    w = can.Logger(str(path))
    for m in frames:
        w.on_message_received(m)
    w.stop()
    return path


def agent_config(tmp: Path, state: Path, extra: str = "") -> Path:
    p = tmp / "agent.toml"
    p.write_text(f'[vehicle]\nid = "CAR-R1"\n\n[state]\ndir = "{state}"\n\n[can]\ninterface = "socketcan"\n'
                 f'channel = "can-never-opened"\n{extra}')
    return p


def test_replay_stores_the_days_and_prints_the_summary(tmp_path):
    sim = Simulator("healthy", seed=5, days=12)
    log = write_log(tmp_path / "car.asc", (m for _, m in sim.frames()))
    cfg = agent_config(tmp_path, tmp_path / "ignored")
    r = replay(log, cfg, "--state", str(tmp_path / "state"))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"replayed {log}:" in out and "days closed: 12 (2024-01-01 .. 2024-01-12)" in out
    assert "drops: none" in out and "signals never seen: none" in out
    st = StateStore(tmp_path / "state")
    assert diff_rows(st.history(), sim.truth()) == []
    st.close()
    assert not (tmp_path / "ignored").exists()
    # the same log again: everything already processed, nothing doubled
    r = replay(log, cfg, "--state", str(tmp_path / "state"))
    assert r.returncode == 0 and "days closed: 0" in r.stdout and "already processed" in r.stdout


@pytest.mark.parametrize("case, message", [
    ("missing", "log not found"),
    ("suffix", "cannot read log"),
    ("config", "unknown section"),
    ("map", "not a canonical signal name"),
])
def test_replay_bad_input_is_one_line_and_exit_2(tmp_path, case, message):
    log = write_log(tmp_path / "car.log", [can.Message(arbitration_id=0x123, data=b"\x01", timestamp=1.0)])
    cfg = agent_config(tmp_path, tmp_path / "state")
    if case == "missing":
        log = tmp_path / "nope.log"
    elif case == "suffix":
        log = tmp_path / "car.xyz"
        log.write_text("hello")
    elif case == "config":
        cfg.write_text(cfg.read_text() + "\n[bogus]\nx = 1\n")
    elif case == "map":
        (tmp_path / "m.toml").write_text('[signals."Vehicle.Nope"]\nmessage = "IBS_Status"\nsignal = "IBS_Voltage"\n')
        cfg.write_text(cfg.read_text() + f'signal_map = "{tmp_path / "m.toml"}"\n')
    r = replay(log, cfg)
    assert r.returncode == 2, r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("trey-agent replay:")]
    assert len(err) == 1 and message in err[0], r.stderr
    assert "Traceback" not in r.stderr


def glitching_clock_frames(days: int, seed: int = 8):
    """The virtual car's frames with GW_VehicleTime glitches on some mornings: 0xFFFFFFFF twice,
    0 (far back) and 40 days ahead, right after a good time frame."""
    smap = load_signal_map()
    tmsg = smap.message(S.CURRENT_TIME)
    sim = Simulator("healthy", seed=seed, days=days)
    frames = []
    for t, m in sim.frames():
        frames.append(m)
        if m.arbitration_id == tmsg.frame_id and int(t) % 86400 == 10 * 3600 and int(t) // 86400 % 7 == 3:
            for k, bad in enumerate((0xFFFFFFFF, 0xFFFFFFFF, 0, int(t) + 40 * 86400)):
                frames.append(can.Message(arbitration_id=tmsg.frame_id, is_extended_id=False,
                                          data=bad.to_bytes(4, "little"), timestamp=m.timestamp + 0.0001 * (k + 1)))
    return sim, frames


def test_a_glitching_vehicle_clock_never_becomes_the_date_and_a_restart_keeps_storing_days(tmp_path):
    """GW_VehicleTime = 0xFFFFFFFF (in the DBC range) once used to move "today" to 2106 and the
    checkpoint kept it: no day stored after it, even after a restart. Now: suspect, counted, ignored."""
    sim, frames = glitching_clock_frames(30)
    half = len(frames) // 2
    first = write_log(tmp_path / "first.log", frames[:half])
    whole = write_log(tmp_path / "whole.log", frames)
    state = tmp_path / "state"
    cfg = agent_config(tmp_path, state)
    r1 = replay(first, cfg)
    assert r1.returncode == 0, r1.stderr
    st = StateStore(state)
    n1 = len(st.history())
    assert 10 <= n1 < 30 and max(r["Date"] for r in st.history()) < "2024-02-01"
    st.close()
    r2 = replay(whole, cfg)                      # the restart: the checkpoint must not hold 2106
    assert r2.returncode == 0, r2.stderr
    st = StateStore(state)
    assert diff_rows(st.history(), sim.truth()) == []
    c = st.counters()
    assert c["clock_suspect"] >= 8 and c["out_of_range"] == 0
    st.close()
    assert "clock_suspect=" in r2.stdout


def test_a_glitching_clock_on_a_live_bus_with_sigkill_and_restart(tmp_path):
    """The same glitches through `trey-agent run` on a udp_multicast bus, SIGKILL mid-way, restart:
    every day stored, the checkpoint never held the glitch."""
    import signal
    import time

    from tests.bus_support import group, write_config
    from tests.conftest import free_port
    from tests.test_bus_e2e_procs import Agent, _rows_stored, _wait_rows

    days = 24
    sim, frames = glitching_clock_frames(days, seed=11)
    log = write_log(tmp_path / "glitchy.log", frames)
    g, port, state = group(), free_port(), tmp_path / "state"
    cfg = write_config(tmp_path / "run.toml", state, "udp_multicast", g, port=port)
    send = [sys.executable, "-m", "can_sim.cli", "replay", str(log), "--interface", "udp_multicast",
            "--channel", g, "--port", str(port), "--max-speed", "--rate-limit", "8000"]
    first = Agent(cfg)
    first.wait_listening()
    rp = subprocess.Popen(send, cwd=ROOT, env=ENV, stderr=subprocess.DEVNULL)
    try:
        _wait_rows(state, days // 3, first.proc)
    finally:
        first.kill()
        rp.send_signal(signal.SIGTERM)
        rp.wait(20)
    assert 0 < _rows_stored(state) < days
    second = Agent(cfg)
    try:
        second.wait_listening()
        assert subprocess.run(send, cwd=ROOT, env=ENV, capture_output=True, timeout=120).returncode == 0
        _wait_rows(state, days, second.proc)
        time.sleep(0.2)
    finally:
        assert second.stop() == 0, "".join(second.lines)
    st = StateStore(state)
    assert diff_rows(st.history(), sim.truth()) == []
    assert st.counters()["clock_suspect"] >= 4
    st.close()
