"""The vehicle clock glitches (docs/rollup.md, Clock): a sample far ahead or behind is suspect -
counted, not used, never in the checkpoint - until confirmed by advancing samples or by the
frames' receive times."""

from __future__ import annotations

from agent import signals as S
from agent.rollup import CLOCK_CONFIRM, DailyRollup
from tests.test_vehicle_defects import D0

ID = {S.BATTERY_ID: 1, S.RATED_CYCLES: 200, S.NOMINAL_CAPACITY: 50.0, S.INSTALL_DATE: D0 // 86400 - 5}


def test_a_single_glitch_is_counted_and_ignored():
    r = DailyRollup()
    r.feed({S.CURRENT_TIME: D0 + 100, **ID})
    assert r.feed({S.CURRENT_TIME: 0xFFFFFFFF}) == []
    assert r.feed({S.CURRENT_TIME: 0}) == []                                   # far back too
    assert r.clock == D0 + 100 and r.clock_suspect == 2
    assert r.snapshot()["clock"] == D0 + 100 and r.snapshot()["today"] == r.today
    r.feed({S.CURRENT_TIME: D0 + 101})
    assert r.clock == D0 + 101


def test_a_stuck_clock_is_never_confirmed():
    r = DailyRollup()
    r.feed({S.CURRENT_TIME: D0, **ID})
    for _ in range(20):
        r.feed({S.CURRENT_TIME: 0xFFFFFFFF})
    assert r.clock == D0 and r.clock_suspect == 20


def test_a_real_step_is_confirmed_by_advancing_samples_or_receive_times():
    r = DailyRollup()
    r.feed({S.CURRENT_TIME: D0, **ID})
    later = D0 + 10 * 86400
    rows = []
    for k in range(CLOCK_CONFIRM):
        rows += r.feed({S.CURRENT_TIME: later + k})
    assert r.clock == later + CLOCK_CONFIRM - 1 and r.clock_suspect == CLOCK_CONFIRM - 1
    assert [x["Date"] for x in rows] == [f"2024-03-{d:02d}" for d in range(2, 11)]   # the 9 days parked
    r2 = DailyRollup()
    r2.feed({S.CURRENT_TIME: D0, **ID}, rx=5000.0)
    r2.feed({S.CURRENT_TIME: later}, rx=5000.0 + 10 * 86400 + 3)    # the receiver saw the days pass too
    assert r2.clock == later and r2.clock_suspect == 0
