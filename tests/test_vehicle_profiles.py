"""Shipped vehicle profiles (VW MQB, BMW E90) end to end: frames encoded with cantools from the
production DBCs -> a recorded log -> `trey-agent replay` -> daily rows equal to what the test
generated. The VW run is also the multi-week sleeping-bus acceptance: no identity, time or
throughput frames; trips per day exact, trip minutes within 0.5, daily cycles within 3 % of the
charge the generator moved while the bus was awake."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from agent.schema import cycles_used
from agent.signal_map import load_signal_map
from agent.store import StateStore
from agent.vehicles import PROFILES, profile_paths
from can_sim.production import profile_car
from tests.test_replay import replay, write_log

START = int(datetime(2024, 5, 6, tzinfo=timezone.utc).timestamp())
INSTALL = "2023-11-20"
CAP = 70.0


def _config(tmp_path, profile: str):
    p = tmp_path / "agent.toml"
    p.write_text(f'[vehicle]\nid = "CAR-{profile}"\n\n[state]\ndir = "{tmp_path / "state"}"\n\n'
                 f'[can]\nprofile = "{profile}"\n\n'
                 f'[battery]\nid = "BAT-{profile}"\nrated_cycles = 300\nnominal_capacity_ah = {CAP}\n'
                 f'install_date = "{INSTALL}"\n')
    return p


def _check_rows(rows, car, *, measured: bool):
    want = [car.expected[d] for d in sorted(car.expected)][:-1]       # the last day is still open
    assert [r["Date"] for r in rows] == [date.fromordinal(date(1970, 1, 1).toordinal() + e.day).isoformat()
                                         for e in want]
    install = date.fromisoformat(INSTALL).toordinal() - date(1970, 1, 1).toordinal()
    life = 0.0
    for r, e in zip(rows, want):
        where = r["Date"]
        assert r["Battery_ID"] == car_id(rows) and r["Battery_Rated_Cycles"] == 300, where
        assert r["Battery_Age_Days"] == e.day - install, where
        assert r["Number_Of_Trips"] == e.trips, where
        assert r["Daily_Trip_Duration"] == pytest.approx(e.trip_s / 60.0, abs=1e-6), where
        assert abs(r["Daily_Trip_Duration"] - e.trip_s / 60.0) <= 0.5, where
        assert r["Cycles_Source"] == ("measured:current" if measured else None), where
        if measured:
            assert r["Daily_Cycles_Used"] == pytest.approx(cycles_used(e.trapezoid_ah, CAP), rel=1e-9, abs=1e-12), where
            assert r["Daily_Cycles_Used"] == pytest.approx(cycles_used(e.true_ah, CAP), rel=0.03, abs=1e-9), where
            life += r["Daily_Cycles_Used"]
            assert r["Lifetime_Cycles_Used"] == pytest.approx(life, rel=1e-9), where
        else:
            assert r["Daily_Cycles_Used"] is None and r["Lifetime_Cycles_Used"] is None, where
        for col, v in (("Min_Cranking_Voltage", e.min_crank), ("Resting_Voltage", e.resting)):
            assert (r[col] is None) == (v is None), (where, col)
            if v is not None:
                assert r[col] == pytest.approx(v, abs=1e-9), (where, col)


def car_id(rows):
    return rows[0]["Battery_ID"]


def test_vw_mqb_multi_week_sleeping_bus_replay(tmp_path):
    car = profile_car("vw_mqb", START, days=21, seed=4)
    log = write_log(tmp_path / "vw.log", car.frames())                # candump format
    r = replay(log, _config(tmp_path, "vw_mqb"))
    assert r.returncode == 0, r.stderr
    assert "days closed: 21" in r.stdout
    assert "no Vehicle.CurrentTime in the signal map: clock = frame timestamps" in r.stderr
    st = StateStore(tmp_path / "state")
    rows = st.history()
    assert car_id(rows) == "BAT-vw_mqb"
    _check_rows(rows, car, measured=True)
    assert sum(1 for e in list(car.expected.values())[:-1] if e.trips == 0) >= 2    # parked days have rows
    c = st.counters()
    assert c["invalid"] > 0                   # speed frames with the qualifier bit set were not used
    assert c["unknown_id"] == 0 and c["out_of_range"] == 0 and c["sentinel"] == 0
    st.close()


def test_bmw_e90_big_endian_replay_without_current(tmp_path):
    car = profile_car("bmw_e9x_e8x", START, days=6, seed=9)
    log = write_log(tmp_path / "bmw.asc", car.frames())
    r = replay(log, _config(tmp_path, "bmw_e9x_e8x"))
    assert r.returncode == 0, r.stderr
    st = StateStore(tmp_path / "state")
    _check_rows(st.history(), car, measured=False)
    st.close()


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_ships_its_dbc_map_and_licence(name):
    dbc, smap = profile_paths(name)
    assert dbc.is_file() and smap.is_file() and (dbc.parent / "LICENSE.opendbc").is_file()
    assert dbc.read_bytes() == (dbc.parents[3] / "tests" / "data" / "vehicles" / dbc.name).read_bytes()
    load_signal_map(dbc, smap)


def test_trey_sim_vehicle_records_a_log_that_replay_reads(tmp_path):
    import subprocess
    import sys

    from tests.bus_support import ROOT
    from tests.test_replay import ENV
    log = tmp_path / "bmw.log"
    r = subprocess.run([sys.executable, "-m", "can_sim.cli", "vehicle", "bmw_e9x_e8x", "--interface", "none",
                        "--days", "3", "--seed", "2", "--max-speed", "--record", str(log)], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = replay(log, _config(tmp_path, "bmw_e9x_e8x"))
    assert r.returncode == 0 and "days closed: 3 (2024-05-06 .. 2024-05-08)" in r.stdout, r.stdout + r.stderr
