"""Cycles_Source: every daily row (and the battery alert) says how its cycles were obtained; state dirs
and uplink rows from older agents (without the column) still load."""

from __future__ import annotations

import json
import sqlite3

from agent import signals as S
from agent.daemon import battery_summary
from agent.rollup import BatteryInfo, DailyRollup
from agent.schema import DAILY_COLUMNS, OPTIONAL_COLUMNS
from agent.store import StateStore
from agent.topics import SCHEMA_VERSION, daily_topic, decode_uplink
from tests.test_vehicle_defects import D0


def _one_day(r, views):
    rows = []
    for t, v in views:
        rows += r.feed({S.CURRENT_TIME: t, **v}, rx=t)
    return rows + r.feed({S.CURRENT_TIME: D0 + 86400}, rx=D0 + 86400)


def test_each_row_names_its_cycles_source():
    bat = BatteryInfo("B", 200, 50.0, None)
    counter = DailyRollup(True, battery=bat)
    (row,) = _one_day(counter, [(D0, {S.THROUGHPUT: 1.0}), (D0 + 10, {S.THROUGHPUT: 2.0})])
    assert row["Cycles_Source"] == "measured:throughput_counter"
    current = DailyRollup(False, battery=bat)
    (row,) = _one_day(current, [(D0, {S.CURRENT: 5.0}), (D0 + 10, {S.CURRENT: 5.0})])
    assert row["Cycles_Source"] == "measured:current"
    est = DailyRollup(False, battery=bat)
    est.measured, est.estimate = False, (0.1, 10.0)
    (row,) = _one_day(est, [(D0, {S.SYSTEM_STATE: "ON"}), (D0 + 1800, {S.SYSTEM_STATE: "OFF"})])
    assert row["Cycles_Source"] == "estimated:engine_time"
    assert abs(row["Daily_Cycles_Used"] - (0.1 + 10.0 * 0.5) / 100.0) < 1e-12
    none = DailyRollup(False, battery=bat)
    none.measured = False
    (row,) = _one_day(none, [(D0, {S.SYSTEM_STATE: "ON"}), (D0 + 1800, {S.SYSTEM_STATE: "OFF"})])
    assert row["Cycles_Source"] is None and row["Daily_Cycles_Used"] is None
    summary = battery_summary("B", {"lifetime_cycles": 1.0, "rated_cycles": 200}, [row | {"Cycles_Source": "estimated:engine_time"}])
    assert summary["cycles_source"] == "estimated:engine_time"


def test_a_state_dir_from_an_older_agent_gains_the_column(tmp_path):
    old_cols = [c for c in DAILY_COLUMNS if c not in OPTIONAL_COLUMNS and c not in ("Date", "Battery_ID")]
    with sqlite3.connect(tmp_path / "state.db") as c:
        c.execute(f'CREATE TABLE daily ("Date" TEXT NOT NULL, "Battery_ID" NOT NULL, '
                  f'{", ".join(chr(34) + x + chr(34) for x in old_cols)}, PRIMARY KEY ("Battery_ID", "Date"))')
        c.execute('INSERT INTO daily ("Date", "Battery_ID", "Number_Of_Trips") VALUES (?, ?, ?)', ("2024-01-01", 7, 2))
    st = StateStore(tmp_path)
    st.store_daily_row({c: None for c in DAILY_COLUMNS} | {"Date": "2024-01-02", "Battery_ID": 7,
                                                           "Cycles_Source": "measured:current"})
    rows = st.history()
    assert [(r["Date"], r["Cycles_Source"]) for r in rows] == [("2024-01-01", None), ("2024-01-02", "measured:current")]
    st.close()


def test_an_older_agents_uplink_row_is_accepted_with_the_column_empty():
    row = {c: None for c in DAILY_COLUMNS if c not in OPTIONAL_COLUMNS} | {"Date": "2024-01-01", "Battery_ID": 1}
    payload = json.dumps({"schema": SCHEMA_VERSION, "msg_id": "0" * 32, "vehicle_id": "CAR-1", "row": row}).encode()
    kind, vid, obj = decode_uplink(daily_topic("CAR-1"), payload)
    assert kind == "daily" and obj["row"]["Cycles_Source"] is None and list(obj["row"]) == list(DAILY_COLUMNS)
