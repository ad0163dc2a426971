"""Cleaning (agent/cleaning.py) on crafted defect data: duplicates, a 12-hourly period,
gaps, empty cells, malformed rows."""

from __future__ import annotations

import numpy as np
import pytest

from agent.cleaning import CleaningError, clean_history


def row(date, bid="7", age=0, trips=2, dur=30.0, cyc=0.1, life="", rated=200):
    return {"Date": date, "Battery_ID": bid, "Battery_Age_Days": str(age), "Number_Of_Trips": str(trips),
            "Daily_Trip_Duration": str(dur), "Daily_Cycles_Used": str(cyc), "Lifetime_Cycles_Used": str(life),
            "Battery_Rated_Cycles": str(rated)}


def test_half_day_rows_resample_duplicates_drop_and_gaps_interpolate():
    rows = [
        # 12-hourly period: day 1 complete, day 2 complete (+ an exact duplicate)
        row("2014-12-30 00:00:00", age=0, trips=1, dur=10, cyc=0.04, life=0.04),
        row("2014-12-30 12:00:00", age=0, trips=2, dur=20, cyc=0.06, life=0.10),
        row("2014-12-31 00:00:00", age=1, trips=0, dur=0, cyc=0.02, life=0.12),
        row("2014-12-31 00:00:00", age=1, trips=0, dur=0, cyc=0.02, life=0.12),
        row("2014-12-31 12:00:00", age=1, trips=3, dur=40, cyc=0.10, life=0.22),
        # daily from 2015; 2015-01-02 and 2015-01-03 missing
        row("2015-01-01", age=2, trips=2, dur=30, cyc=0.30, life=0.52),
        row("2015-01-04", age=5, trips=5, dur=60, cyc=0.60, life=9.99),   # wrong lifetime: recomputed
        row("2015-01-04", age=5, trips=5, dur=60, cyc=0.60, life=9.99),
    ]
    res = clean_history(rows)
    assert res.stats["duplicates_dropped"] == 2
    h = res.batteries["7"]
    assert [d.isoformat() for d in h.dates] == ["2014-12-30", "2014-12-31", "2015-01-01", "2015-01-02",
                                                "2015-01-03", "2015-01-04"]
    np.testing.assert_allclose(h.trips, [3, 3, 2, 3, 4, 5])
    np.testing.assert_allclose(h.duration, [30, 40, 30, 40, 50, 60])
    np.testing.assert_allclose(h.cycles, [0.10, 0.12, 0.30, 0.40, 0.50, 0.60])
    np.testing.assert_allclose(h.age, [0, 1, 2, 3, 4, 5])
    np.testing.assert_allclose(h.lifetime, np.cumsum([0.10, 0.12, 0.30, 0.40, 0.50, 0.60]))
    np.testing.assert_allclose(h.rated, 200)
    assert h.interpolated.tolist() == [False, False, False, True, True, False]


def test_missing_half_day_slot_is_time_interpolated_and_anchor_kept():
    rows = [row("2014-06-01 00:00:00", cyc=0.2, life=50.2, age=100),
            # 2014-06-01 12:00 missing -> interpolated between 0.2 and 0.4
            row("2014-06-02 00:00:00", cyc=0.4, life=50.9, age=101),
            row("2014-06-02 12:00:00", cyc=0.4, life=51.3, age=101)]
    h = clean_history(rows).batteries["7"]
    np.testing.assert_allclose(h.cycles, [0.2 + 0.3, 0.8])
    # an agent installed mid-life: the running sum is anchored at the lifetime reported at
    # the end of the first day (the 12:00 slot, itself interpolated: (50.2 + 50.9) / 2)
    np.testing.assert_allclose(h.lifetime, [50.55, 51.35])
    assert h.interpolated.tolist() == [True, False]


def test_batteries_are_separate_and_empty_cells_interpolate():
    rows = [row("2016-01-01", bid="A", cyc=0.1), row("2016-01-01", bid="B", cyc=1.0),
            row("2016-01-02", bid="A", cyc=""), row("2016-01-03", bid="A", cyc=0.3),
            {"Date": "2016-01-02", "Battery_ID": 5.0, "Daily_Cycles_Used": 0.5}]  # store-style values
    res = clean_history(rows)
    assert sorted(res.batteries) == ["5", "A", "B"]
    np.testing.assert_allclose(res.batteries["A"].cycles, [0.1, 0.2, 0.3])
    assert res.batteries["A"].interpolated.tolist() == [False, True, False]
    assert len(res.batteries["B"]) == 1


def test_conflicting_duplicate_keeps_first():
    res = clean_history([row("2016-01-01", cyc=0.1), row("2016-01-01", cyc=0.9)])
    assert res.stats["conflicting_duplicates"] == 1
    np.testing.assert_allclose(res.batteries["7"].cycles, [0.1])


@pytest.mark.parametrize("bad, msg", [
    ({"Date": "2016-13-01"}, "Date"),
    ({"Daily_Cycles_Used": "lots"}, "Daily_Cycles_Used"),
    ({"Number_Of_Trips": "-3"}, "Number_Of_Trips"),
    ({"Battery_ID": ""}, "Battery_ID"),
])
def test_malformed_row_names_its_line(bad, msg):
    rows = [row("2016-01-01"), row("2016-01-02"), {**row("2016-01-03"), **bad}]
    with pytest.raises(CleaningError) as exc:
        clean_history(rows)
    assert exc.value.line == 4 and msg in str(exc.value)
