"""Fleet batch forecasting: the vectorised batch form equals the car's single-battery path
and training's window definition; `trey-export score battery` on Spark equals `trey-agent
forecast` on the same rows (alerts identical, forecasts within 1e-4), from a CSV and from the
lake."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from agent.cleaning import BatchHistories, NUMERIC_COLUMNS, clean_columns, clean_history
from agent.forecast import BatteryForecaster
from agent.forecast_features import batch_window_inputs, day_matrix, pad_history, window_inputs
from export.lake import tables as LT


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    d = tmp_path_factory.mktemp("fleet")
    r = subprocess.run([sys.executable, "-m", "export.cli", "data", "battery", "--batteries", "30",
                        "--seed", "11", "--out", str(d)], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    with open(d / "battery_history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    # young batteries too: cut some histories short (padding and both fallbacks)
    by: dict[str, list] = {}
    for row in rows:
        by.setdefault(row["Battery_ID"], []).append(row)
    cut = []
    for i, (b, rs) in enumerate(by.items()):
        cut += rs[:[5, 12, 40, 200, 10 ** 6][i % 5]]
    path = d / "mixed.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(cut)
    return path, cut


def _agent_cli(path) -> dict[str, dict]:
    r = subprocess.run([sys.executable, "-m", "agent.cli", "forecast", str(path)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return {a["battery_id"]: a for a in map(json.loads, r.stdout.splitlines())}


def _assert_same(got: dict, want: dict):
    assert set(got) == set(want)
    for bid, w in want.items():
        g = got[bid]
        assert g["alert"] == w["alert"], bid
        for k in ("as_of", "days_to_rated", "fallback", "history_days", "rated_cycles"):
            assert g[k] == w[k], (bid, k, g[k], w[k])
        np.testing.assert_allclose(g["forecast_daily_cycles"], w["forecast_daily_cycles"], atol=1e-4)
        for k in ("lifetime_cycles", "projected_lifetime_cycles_30d"):
            assert g[k] == pytest.approx(w[k], abs=1e-4), (bid, k)
        assert g["model"] in (f"{w['model']['name']}@{w['model']['version']}", w["model"])


def test_batch_form_equals_the_single_battery_path_and_training_windows(fleet):
    _, rows = fleet
    fc = BatteryForecaster.default()
    res = clean_history(rows)
    batch_answers = fc.forecast_batch(res.batch)
    assert len(batch_answers) == 30 and {a["fallback"] for a in batch_answers} == {
        None, "padded_history", "short_history_mean", "fleet_median"}
    for a in batch_answers:                               # the car: one battery, its own rows
        alone = fc.forecast([r for r in rows if r["Battery_ID"] == a["battery_id"]])
        assert alone == a
    # windows: the batch gather == training's pad_history + window_inputs, young and old
    hs = [h for h in res.batteries.values() if len(h) >= 28]
    x, lv = batch_window_inputs(BatchHistories.of(hs), np.arange(len(hs)), fc.params)
    for i, h in enumerate(hs):
        hw = pad_history(h.tail(fc.window), fc.window)
        xr, lr = window_inputs(day_matrix(hw), np.array([fc.window - 1]), fc.params)
        np.testing.assert_allclose(x[i], xr[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(lv[i], lr[0], rtol=1e-6)


def test_clean_columns_equals_clean_history_on_daily_rows(fleet):
    _, rows = fleet
    daily = [r for r in rows if len(r["Date"]) == 10]
    ref = clean_history(daily).batch
    import datetime as dt
    days = [(dt.date.fromisoformat(r["Date"]) - dt.date(1970, 1, 1)).days for r in daily]
    vals = {c: np.array([float(r[c]) if r[c] != "" else np.nan for r in daily]) for c in NUMERIC_COLUMNS}
    got, stats, skipped = clean_columns([r["Battery_ID"] for r in daily], days, vals)
    assert got.battery_ids == ref.battery_ids and not skipped and stats["rows"] == len(daily)
    for name in ("offsets", "day", "age", "trips", "duration", "cycles", "lifetime", "rated", "interpolated"):
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name), err_msg=name)


def _read_forecasts(root) -> list[dict]:
    files = [str(f) for f in (root / "forecasts").glob("date=*/*.parquet")]
    for f in files:
        s = pq.read_schema(f)
        assert s.names == LT.SCHEMAS[LT.FORECASTS].names
        assert [s.field(c).type for c in s.names] == [LT.SCHEMAS[LT.FORECASTS].field(c).type for c in s.names]
    out = ds.dataset(files, format="parquet", schema=LT.SCHEMAS[LT.FORECASTS]).to_table().to_pylist()
    for r in out:
        r["as_of"] = r["as_of"].isoformat()
    return out


def test_score_battery_on_spark_equals_trey_agent_forecast_csv(fleet, tmp_path, spark):
    from export.lake.score_battery import score_battery
    path, _ = fleet
    want = _agent_cli(path)
    stats = score_battery(spark, str(tmp_path / "out"), history=str(path), chunk=7)   # several chunks per task
    got = {r["battery_id"]: r for r in _read_forecasts(tmp_path / "out")}
    _assert_same(got, want)
    assert stats["batteries"] == 30 and stats["alerts"] == sum(a["alert"] for a in want.values())
    summary = (tmp_path / "out" / "forecast_summary.csv").read_text().splitlines()
    assert summary[0] == "as_of,batteries,alerts,fallbacks"
    assert sum(int(x.split(",")[1]) for x in summary[1:]) == 30


def test_score_battery_from_the_lake_per_vehicle(fleet, tmp_path, spark):
    from agent import topics as T
    from agent.schema import DAILY_COLUMNS
    from export.ingest import LandingWriter, read_daily
    from export.lake.compact import compact
    from export.lake.score_battery import score_battery
    _, rows = fleet
    daily = [r for r in rows if len(r["Date"]) == 10]                  # the car sends days
    lake = tmp_path / "lake"
    w = LandingWriter(lake, "w1")
    items = []
    for i, r in enumerate(daily):
        vid = "CAR-A" if int(r["Battery_ID"]) % 2 else "CAR-B"
        row = {c: (float(r[c]) if r.get(c) not in (None, "") else None) for c in DAILY_COLUMNS[2:]}
        row.update(Date=r["Date"], Battery_ID=r["Battery_ID"])
        items.append(("daily", vid, T.daily_topic(vid), json.dumps(T.daily_payload(vid, row)), time.time()))
    w.write(items)
    compact(spark, str(lake))
    table = read_daily(lake)
    csv_path = tmp_path / "lake_rows.csv"
    table[list(DAILY_COLUMNS)].to_csv(csv_path, index=False)
    want = _agent_cli(csv_path)
    score_battery(spark, str(lake), lake=str(lake))                    # into the lake's forecasts table
    got = _read_forecasts(lake)
    assert {(r["vehicle_id"], r["battery_id"]) for r in got} == set(zip(table.vehicle_id, table.Battery_ID))
    _assert_same({r["battery_id"]: r for r in got}, want)
    # training from the lake: a seeded sample of batteries, each cleaned in Spark as the agent
    # cleans it (young ones too; tests/test_lake_training.py checks the windows built from them)
    from export.lake.training import LakeHistories
    src, again = LakeHistories(spark, str(lake), max_batteries=6, seed=3), LakeHistories(spark, str(lake), 6, 3)
    try:
        hs, stats = src.histories(), src.cleaning
        assert len(hs) == 6 and src.ids == again.ids == list(hs)
    finally:
        src.close()
        again.close()
    assert stats["batteries_in_lake"] == len(set(zip(table.vehicle_id, table.Battery_ID)))
    for key, h in hs.items():
        vid, bid = key.split("/", 1)
        mine = table[(table.vehicle_id == vid) & (table.Battery_ID == bid)]
        ref = clean_history(mine[list(DAILY_COLUMNS)].astype(object).where(mine[list(DAILY_COLUMNS)].notna(), None)
                            .to_dict("records")).batteries[bid]
        assert h.dates == ref.dates
        np.testing.assert_array_equal(h.lifetime, ref.lifetime)
        np.testing.assert_array_equal(h.interpolated, ref.interpolated)
    assert stats["rows"] == sum(int(((table.vehicle_id == k.split("/")[0]) & (table.Battery_ID == k.split("/")[1])).sum())
                                for k in hs)
