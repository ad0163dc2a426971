"""Virtual car -> agent pipeline in-process over python-can `virtual` buses, against the sim's truth."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid

import can
import pytest

from agent.reader import Pipeline
from agent.signal_map import load_signal_map
from agent.store import StateStore
from can_sim import Simulator, replay, send_stream
from tests.bus_support import ROOT, diff_rows, pump, read_csv_rows


@pytest.fixture(scope="module")
def smap():
    return load_signal_map()


def _drive_over_virtual(sim_stream, pipeline: Pipeline, channel: str, *, record=None, log_path=None):
    """Send a stream (or a recorded log) on a virtual bus from a thread; the pipeline reads it."""
    tx = can.Bus(interface="virtual", channel=channel)
    result = {}

    def send():
        if log_path is not None:
            result["stats"] = replay(log_path, tx, speed=None)
        else:
            result["stats"] = send_stream(tx, sim_stream, speed=None, record=record)

    th = threading.Thread(target=send, daemon=True)
    th.start()
    try:
        pump(pipeline, th, 5000, drain_s=0.05)
    finally:
        th.join()
        tx.shutdown()
    return result["stats"]


def _pipeline(smap, state, channel):
    rx = can.Bus(interface="virtual", channel=channel)
    return Pipeline(smap, StateStore(state), bus=rx, own_bus=True)


def test_aging_400_days_matches_truth(smap, tmp_path):
    sim = Simulator("aging", seed=7, days=400)
    ch = f"aging-{uuid.uuid4().hex}"
    p = _pipeline(smap, tmp_path / "state", ch)
    closed = []
    p.add_day_closed_listener(lambda row: closed.append((row, p.store.history(row["Battery_ID"])[-1])))
    stats = _drive_over_virtual(sim.frames(), p, ch)
    p.close()
    truth = sim.truth()
    rows = p.store.history()
    assert stats.frames == p.frames > 300_000
    assert len(rows) == len(truth) == 400
    for got, want in zip(rows, truth):
        assert got["Date"] == want["Date"]
        assert got["Number_Of_Trips"] == want["Number_Of_Trips"]
        assert got["Daily_Cycles_Used"] == pytest.approx(want["Daily_Cycles_Used"], rel=0.02, abs=1e-9)
    life = [r["Lifetime_Cycles_Used"] for r in rows]
    assert all(b >= a for a, b in zip(life, life[1:]))
    assert life[-1] > rows[-1]["Battery_Rated_Cycles"]          # the aging battery reaches end of life
    assert diff_rows(rows, truth) == []                         # in fact: exactly what the truth says
    # listeners run after the commit: the row is already in the store when they see it
    assert len(closed) == 400 and all(seen == stored for seen, stored in closed)
    assert all(v == 0 for k, v in p.counters().items() if k != "frames")
    # `trey-agent history` prints the stored rows with the seed column names
    out = subprocess.run([sys.executable, "-m", "agent", "history", "--state", str(tmp_path / "state")],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert diff_rows(read_csv_rows(out), truth) == []
    p.store.close()


@pytest.mark.parametrize("scenario", ["sensor-faults", "busy-bus"])
def test_faulty_and_busy_bus_counted_not_fatal(smap, tmp_path, scenario):
    sim = Simulator(scenario, seed=11, days=30)
    ch = f"{scenario}-{uuid.uuid4().hex}"
    p = _pipeline(smap, tmp_path / "state", ch)
    _drive_over_virtual(sim.frames(), p, ch)
    p.close()
    injected = sim.faults()
    counters = p.store.counters()
    assert {k: counters[k] for k in injected} == injected
    if scenario == "sensor-faults":
        assert min(injected["bad_dlc"], injected["out_of_range"], injected["undecodable"]) > 5
    else:
        assert injected["unknown_id"] > 10_000
    # dropouts and stuck values are in the truth too: the rows still agree
    assert diff_rows(p.store.history(), sim.truth()) == []
    p.store.close()


@pytest.mark.parametrize("suffix", [".log", ".asc"])
def test_replay_of_recorded_log_gives_same_rows_as_live(smap, tmp_path, suffix):
    sim = Simulator("sensor-faults", seed=3, days=20)
    rec = tmp_path / f"drive{suffix}"
    ch = f"live-{uuid.uuid4().hex}"
    live = _pipeline(smap, tmp_path / "live", ch)
    _drive_over_virtual(sim.frames(), live, ch, record=rec)
    live.close()
    ch2 = f"replay-{uuid.uuid4().hex}"
    again = _pipeline(smap, tmp_path / "replay", ch2)
    _drive_over_virtual(None, again, ch2, log_path=rec)
    again.close()
    rows = again.store.history()
    assert len(rows) == 20
    assert rows == live.store.history()
    assert again.store.counters() == live.store.counters()
    assert diff_rows(rows, sim.truth()) == []
    live.store.close()
    again.store.close()


@pytest.mark.parametrize("scenario", ["aging", "sensor-faults"])
def test_restart_mid_log_resumes_exactly_and_new_battery_history(smap, tmp_path, scenario):
    """Stop abruptly at several points (no close: like SIGKILL after the last checkpoint), restart on the
    same state and re-feed the whole log from its start: the rows equal one uninterrupted pass."""
    sim = Simulator(scenario, seed=5, days=40, replace_battery_day=25, battery_age_days=200)
    frames = [m for _, m in sim.frames()]
    ref = Pipeline(smap, StateStore(tmp_path / "ref"))
    changes = []
    ref.add_battery_changed_listener(lambda old, new: changes.append((old, new)))
    ref.feed_many(frames)
    ref.close()
    want = ref.store.history()
    assert diff_rows(want, sim.truth()) == []
    assert changes == [(sim.battery_id, sim.battery_id + 1)]
    assert [r["Battery_ID"] for r in want].count(sim.battery_id + 1) == 15
    new_life = [r["Lifetime_Cycles_Used"] for r in want if r["Battery_ID"] == sim.battery_id + 1]
    assert new_life[0] < 1.0 < want[0]["Lifetime_Cycles_Used"]    # the old battery's past, the new one's own

    state = tmp_path / "crashy"
    n = len(frames)
    for stop in (n // 7, n // 3 + 5, n // 2 + 11, (4 * n) // 5):
        p = Pipeline(smap, StateStore(state), checkpoint_wall_s=1e9)
        p.feed_many(frames[:stop])       # the last hours after the checkpoint are lost with the "crash"
        p.store.close()
    p = Pipeline(smap, StateStore(state))
    p.feed_many(frames)
    p.close()
    assert p.store.history() == want
    assert p.store.counters() == ref.store.counters()       # skipped frames are not counted twice
    if scenario == "sensor-faults":
        assert {k: p.store.counters()[k] for k in sim.faults()} == sim.faults()
    p.store.close()
    ref.store.close()


def test_without_throughput_counter_the_agent_integrates_current(tmp_path):
    """Another vehicle without the IBS counter: the map leaves ChargeThroughput out, the agent integrates
    |current| over vehicle time. Its samples are the frame sets (60 s driving, hourly parked), so the
    cycles are an approximation of the counter's truth; trips are still exact."""
    from agent.signal_map import DEFAULT_SIGNAL_MAP
    text = DEFAULT_SIGNAL_MAP.read_text()
    start = text.index('[signals."Vehicle.LowVoltageBattery.ChargeThroughput"]')
    end = text.index("[signals.", start + 1)
    (tmp_path / "map.toml").write_text(text[:start] + text[end:])
    sm = load_signal_map(None, tmp_path / "map.toml")
    assert not sm.has("Vehicle.LowVoltageBattery.ChargeThroughput")
    sim = Simulator("aging", seed=7, days=60, battery_age_days=100)
    # The simulator's decimated frame sets stand for an awake bus over their interval (hourly
    # while parked): tell the agent its samples are that far apart (docs/rollup.md, sleeping bus).
    p = Pipeline(sm, StateStore(tmp_path / "state"), sleep_gap_s=3700)
    p.feed_many(m for _, m in sim.frames())
    p.close()
    rows, truth = p.store.history(), sim.truth()
    assert [r["Number_Of_Trips"] for r in rows] == [t["Number_Of_Trips"] for t in truth]
    got, want = sum(r["Daily_Cycles_Used"] for r in rows), sum(t["Daily_Cycles_Used"] for t in truth)
    assert got == pytest.approx(want, rel=0.08)
    # no counter: the agent cannot know the battery's past, its lifetime starts at 0 and only climbs
    assert rows[-1]["Lifetime_Cycles_Used"] == pytest.approx(got)
    assert p.counters()["unknown_id"] > 0              # the throughput frames are now someone else's
    p.store.close()
