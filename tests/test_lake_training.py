"""Training windows from the lake are built by Spark (export/lake/training.py) with the same
window code as the local path (export/battery/data.py): for the same batteries the arrays are
identical; the sample of batteries and windows is seeded (same lake + seed, same sample) and
bounded (never more windows than --max-windows, never more per battery than asked)."""

from __future__ import annotations

import datetime as dt
import json
import time

import numpy as np
import pytest

from agent.cleaning import clean_history
from agent.schema import DAILY_COLUMNS
from export.battery.data import ROLES, LocalHistories, training_data
from export.lake.training import LakeHistories

KW = dict(window=56, train_stride=4, eval_stride=3, max_per_battery=15)   # 56 > 28 days: padded origins too


@pytest.fixture(scope="module")
def lake(tmp_path_factory, spark):
    """12 generated batteries on 3 cars, their last 160 days (moved to end on one date: 160 date
    partitions, not 900 -- every file a compaction writes costs time) landed by two workers."""
    from agent import topics as T
    from export.battery.fleet import generate_fleet, RAW_FILE
    from export.ingest import LandingWriter, read_daily
    from export.lake.compact import compact
    import csv
    d = tmp_path_factory.mktemp("lake_training")
    generate_fleet(12, 5, d / "fleet")
    by: dict[str, list] = {}
    with open(d / "fleet" / RAW_FILE, newline="") as fh:
        for r in csv.DictReader(fh):
            if len(r["Date"]) == 10:                                    # the car sends days
                by.setdefault(r["Battery_ID"], []).append(r)
    items = []
    end = dt.date(2021, 1, 31)
    for bid, rows in by.items():
        vid = f"CAR-{int(bid) % 3}"
        shift = end - dt.date.fromisoformat(rows[-1]["Date"])
        for r in rows[-160:]:
            row = {c: (float(r[c]) if r.get(c) not in (None, "") else None) for c in DAILY_COLUMNS[2:]}
            row.update(Date=(dt.date.fromisoformat(r["Date"]) + shift).isoformat(), Battery_ID=bid)
            items.append(("daily", vid, T.daily_topic(vid), json.dumps(T.daily_payload(vid, row)), time.time()))
    LandingWriter(d / "lake", "w1").write(items[::2])
    LandingWriter(d / "lake", "w2").write(items[1::2])
    compact(spark, str(d / "lake"))
    return str(d / "lake"), read_daily(d / "lake")


def _local(table, keys) -> LocalHistories:
    """The same batteries cleaned in this process, as `trey-export train battery --data CSV` does."""
    hs = {}
    for key in keys:
        vid, bid = key.split("/", 1)
        mine = table[(table.vehicle_id == vid) & (table.Battery_ID == bid)].sort_values(
            ["Date", "received_at"], kind="stable")
        recs = mine[list(DAILY_COLUMNS)].astype(object).where(mine[list(DAILY_COLUMNS)].notna(), None)
        hs[key] = clean_history(recs.to_dict("records")).batteries[bid]
    return LocalHistories(hs, {})


def _assert_same(a, b):
    assert a.split == b.split and a.params == b.params and a.fleet_norm == b.fleet_norm
    assert a.sampling == b.sampling
    for role in ROLES:
        wa, wb = getattr(a, role), getattr(b, role)
        assert wa.ids == wb.ids and len(wa) > 0
        for name in ("x", "level", "y", "battery", "ordinal", "lifetime", "rated"):
            x, y = getattr(wa, name), getattr(wb, name)
            assert x.dtype == y.dtype and x.shape == y.shape, (role, name)
            np.testing.assert_array_equal(x, y, err_msg=f"{role}.{name}")


def test_spark_windows_equal_the_local_windows_of_the_same_batteries(lake, spark):
    root, table = lake
    src = LakeHistories(spark, root, max_batteries=9, seed=3)
    try:
        assert len(src.ids) == 9 and src.cleaning["batteries_in_lake"] == 12
        local = _local(table, src.ids)
        for key, h in src.histories().items():                  # cleaning in Spark == the agent's here
            ref = local.histories[key]
            assert h.dates == ref.dates
            for c in ("age", "trips", "duration", "cycles", "lifetime", "rated", "interpolated"):
                np.testing.assert_array_equal(getattr(h, c), getattr(ref, c), err_msg=c)
        assert src.cleaning["rows"] == sum(((table.vehicle_id + "/" + table.Battery_ID) == k).sum() for k in src.ids)
        got = training_data(src, seed=3, **KW)
    finally:
        src.close()
    want = training_data(local, seed=3, **KW)
    _assert_same(got, want)
    # padded (young) origins are in there, and no battery is in two roles
    assert (got.train.ordinal - np.array([local.histories[got.train.ids[b]].dates[0].toordinal()
                                          for b in got.train.battery]) < KW["window"] - 1).any()
    assert not set(got.split["train"]) & (set(got.split["validation"]) | set(got.split["test"]))


def test_window_sample_is_seeded_and_bounded(lake, spark):
    root, _ = lake
    runs = []
    for seed in (3, 3, 4):
        src = LakeHistories(spark, root, max_batteries=9, seed=seed)
        try:
            runs.append((src.ids, training_data(src, seed=seed, max_windows=60, **KW)))
        finally:
            src.close()
    (ids_a, a), (ids_b, b), (ids_c, c) = runs
    assert ids_a == ids_b and ids_a != ids_c                      # same lake + seed: same batteries
    _assert_same(a, b)                                            # ... and the same windows
    kept = sum(len(getattr(a, r)) for r in ROLES)
    assert sum(a.sampling["planned"].values()) > 60 and kept <= 60 and kept >= 57
    assert all(len(getattr(a, r)) for r in ROLES)
    assert np.bincount(a.train.battery).max() <= KW["max_per_battery"]
    # the trainer's arrays are the sample's size, nothing more
    assert a.train.x.shape == (len(a.train), KW["window"], len(a.params["features"]))
