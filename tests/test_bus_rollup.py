"""Rollup (pure) and state store: trips, day attribution, cycles, lifetime, checkpoints, hooks."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from agent import signals as S
from agent.rollup import DailyRollup
from agent.schema import DAILY_COLUMNS, cycles_used
from agent.store import StateStore

D0 = int(datetime(2024, 3, 1, tzinfo=timezone.utc).timestamp())
ID = {S.BATTERY_ID: 42, S.RATED_CYCLES: 200, S.NOMINAL_CAPACITY: 50.0, S.INSTALL_DATE: (D0 // 86400) - 10}


def _drive(r: DailyRollup, events):
    """events: (t, {canonical: value}); every event is preceded by its time frame."""
    rows = []
    for t, view in events:
        rows += r.feed({S.CURRENT_TIME: t})
        rows += r.feed(view)
    return rows


def _day(d0, trips, counter0, ah_per_trip, volts=(12.6, 9.8)):
    """A day with trips of 30 min at 8h, 12h, ...; IBS counter rises by ah_per_trip per trip."""
    ev = [(d0, {**ID, S.SYSTEM_STATE: "OFF", S.VOLTAGE: 12.7, S.TEMPERATURE: 5.0, S.THROUGHPUT: counter0})]
    c = counter0
    for k in range(trips):
        t = d0 + (8 + 4 * k) * 3600
        ev += [(t - 5, {S.SYSTEM_STATE: "ACC", S.VOLTAGE: volts[0]}),
               (t, {S.SYSTEM_STATE: "START", S.VOLTAGE: volts[1], S.TEMPERATURE: 6.0 + k}),
               (t + 2, {S.SYSTEM_STATE: "ON", S.VOLTAGE: 14.2}),
               (t + 1800, {S.SYSTEM_STATE: "OFF", S.THROUGHPUT: c + ah_per_trip, S.TEMPERATURE: 25.0})]
        c += ah_per_trip
    return ev, c


def test_trips_cycles_health_and_lifetime_from_counter():
    r = DailyRollup()
    ev1, c = _day(D0, 2, 1000.0, 5.0)
    ev2, c = _day(D0 + 86400, 3, c, 4.0, volts=(12.5, 9.5))
    rows = _drive(r, ev1 + ev2 + [(D0 + 2 * 86400, {S.THROUGHPUT: c})])
    assert [x["Date"] for x in rows] == ["2024-03-01", "2024-03-02"]
    a, b = rows
    assert set(a) == set(DAILY_COLUMNS)
    assert (a["Number_Of_Trips"], b["Number_Of_Trips"]) == (2, 3)
    assert a["Daily_Trip_Duration"] == pytest.approx(2 * 1800 / 60) and b["Daily_Trip_Duration"] == pytest.approx(90)
    assert a["Daily_Cycles_Used"] == pytest.approx(cycles_used(10.0, 50.0))
    # lifetime starts from the IBS counter at first sight (battery's past), then accumulates
    assert a["Lifetime_Cycles_Used"] == pytest.approx(cycles_used(1000.0, 50.0) + cycles_used(10.0, 50.0))
    assert b["Lifetime_Cycles_Used"] == pytest.approx(a["Lifetime_Cycles_Used"] + cycles_used(12.0, 50.0))
    assert a["Battery_Age_Days"] == 10 and b["Battery_Age_Days"] == 11 and a["Battery_Rated_Cycles"] == 200
    assert (a["Min_Cranking_Voltage"], a["Resting_Voltage"]) == (9.8, 12.7)
    assert (b["Min_Cranking_Voltage"], b["Min_Temperature"], b["Max_Temperature"]) == (9.5, 5.0, 25.0)


def test_counter_delta_goes_to_day_of_earlier_sample_and_trip_to_its_on_day():
    r = DailyRollup()
    late = D0 + 86400 - 600
    rows = _drive(r, [(D0, {**ID, S.SYSTEM_STATE: "OFF", S.THROUGHPUT: 0.0}),
                      (late, {S.SYSTEM_STATE: "ON", S.THROUGHPUT: 0.0}),
                      (D0 + 86400 - 1, {S.THROUGHPUT: 4.0}),                              # before midnight
                      (D0 + 86400 + 1200, {S.SYSTEM_STATE: "OFF", S.THROUGHPUT: 9.0}),   # trip across midnight
                      (D0 + 2 * 86400, {S.THROUGHPUT: 9.0})])
    a, b = rows
    assert a["Number_Of_Trips"] == 1 and b["Number_Of_Trips"] == 0
    # the part of the trip before midnight stays on its start day, the rest goes on the next day
    assert a["Daily_Trip_Duration"] == pytest.approx(10) and b["Daily_Trip_Duration"] == pytest.approx(20)
    # the delta between the last sample of day 1 and the first of day 2 belongs to day 1; day 1 had
    # closed by then (the clock moved), so it is kept on day 2 rather than lost
    assert a["Daily_Cycles_Used"] == pytest.approx(cycles_used(4.0, 50.0))
    assert b["Daily_Cycles_Used"] == pytest.approx(cycles_used(5.0, 50.0))
    assert b["Lifetime_Cycles_Used"] == pytest.approx(cycles_used(9.0, 50.0))


def test_no_time_then_integration_fallback_and_new_battery():
    r = DailyRollup(use_counter=False, sleep_gap_s=4000)      # a sensor reporting hourly: awake
    assert r.feed({**ID, S.CURRENT: -10.0}) == [] and r.no_time == 1
    rows = _drive(r, [(D0, {**ID, S.CURRENT: -10.0}), (D0 + 3600, {S.CURRENT: -10.0}),
                      (D0 + 7200, {S.CURRENT: 30.0})])
    rows += _drive(r, [(D0 + 9000, {**ID, S.BATTERY_ID: 43, S.CURRENT: 1.0})])
    assert r.events == [("battery_changed", 42, 43)]
    rows += _drive(r, [(D0 + 86400, {S.CURRENT: 1.0}), (D0 + 86400 + 1, {**ID})])
    assert [(x["Battery_ID"], x["Date"]) for x in rows] == [(42, "2024-03-01"), (43, "2024-03-01")]
    # trapezoid: 10 Ah in the first hour, (10+30)/2 = 20 Ah in the second; no counter -> lifetime from 0
    assert rows[0]["Daily_Cycles_Used"] == pytest.approx(cycles_used(30.0, 50.0))
    assert rows[0]["Lifetime_Cycles_Used"] == pytest.approx(cycles_used(30.0, 50.0))
    assert rows[1]["Number_Of_Trips"] == 0


def test_snapshot_restore_mid_day_is_seamless():
    ev, c = _day(D0, 3, 10.0, 3.0)
    ev2, c = _day(D0 + 86400, 2, c, 3.0)
    ev = ev + ev2 + [(D0 + 2 * 86400, {S.THROUGHPUT: c})]
    whole = _drive(DailyRollup(), ev)
    for cut in (3, 7, len(ev) - 2):
        r = DailyRollup()
        rows = _drive(r, ev[:cut])
        r2 = DailyRollup.restore(json.loads(json.dumps(r.snapshot())))
        rows += _drive(r2, ev[cut:])
        assert rows == whole


def test_store_hooks_in_transaction_rollback_and_reopen(tmp_path):
    st = StateStore(tmp_path / "s")
    seen = []

    def hook(conn, row):
        conn.execute("CREATE TABLE IF NOT EXISTS outbox (d TEXT)")
        conn.execute("INSERT INTO outbox VALUES (?)", (row["Date"],))
        seen.append(conn.in_transaction)

    def bad_hook(conn, row):
        conn.execute("CREATE TABLE IF NOT EXISTS junk (x)")
        conn.execute("INSERT INTO junk VALUES (1)")
        raise RuntimeError("boom")

    st.add_row_hook(hook)
    st.add_row_hook(bad_hook)
    row = {c: None for c in DAILY_COLUMNS} | {"Date": "2024-03-01", "Battery_ID": 42, "Number_Of_Trips": 2}
    assert st.store_daily_row(row, checkpoint={"x": 1}, counters={"bad_dlc": 3}) is True
    assert st.store_daily_row(row) is False                       # (battery, date) stored once
    assert seen == [True]
    with pytest.raises(ZeroDivisionError), st.transaction() as conn:
        conn.execute("INSERT INTO outbox VALUES ('never')")
        1 / 0
    st.close()
    st = StateStore(tmp_path / "s")
    with st.transaction() as conn:
        assert conn.execute("SELECT d FROM outbox").fetchall() == [("2024-03-01",)]
        # the failed hook's writes were undone, the row and the good hook's insert kept
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'junk'").fetchall() == []
    assert st.history(42)[0]["Number_Of_Trips"] == 2 and st.history("42") == st.history() and st.history(7) == []
    assert st.load_checkpoint() == {"x": 1} and st.counters() == {"bad_dlc": 3}
    st.close()
