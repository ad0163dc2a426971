"""Training data from the lake: the curated daily table -> a sample of batteries, each
cleaned by the agent's cleaning inside Spark (applyInPandas, one battery per call) -> the
clean daily series the trainer turns into windows (export/battery/data.py).

The sample is what one trainer needs: up to `max_batteries` batteries, picked by a seeded
hash of (vehicle_id, Battery_ID), so the same lake and seed always give the same fleet and
a bigger lake never means more memory on the trainer. A battery is identified by
`vehicle_id/Battery_ID` (two cars may report the same battery id)."""

from __future__ import annotations

import logging

import numpy as np

from agent.schema import DAILY_COLUMNS

log = logging.getLogger(__name__)
_OUT = ("key", "battery_id", "ordinal", "age", "trips", "duration", "cycles", "lifetime", "rated", "interpolated",
        "rows", "duplicates_dropped", "conflicting_duplicates", "half_day_rows")


def _clean_one(pdf):
    """All rows of one battery (pandas) -> its clean series, one row per day."""
    import pandas as pd

    from agent.cleaning import clean_history
    pdf = pdf.sort_values(["Date", "received_at"], kind="stable")
    key = f"{pdf['vehicle_id'].iloc[0]}/{pdf['Battery_ID'].iloc[0]}"
    recs = pdf[list(DAILY_COLUMNS)].astype(object).where(pdf[list(DAILY_COLUMNS)].notna(), None)
    recs["Date"] = pdf["Date"].astype(str)
    res = clean_history(recs.to_dict("records"))
    if not res.batteries:
        return pd.DataFrame({c: [] for c in _OUT})
    h = next(iter(res.batteries.values()))
    n = len(h)
    st = res.stats
    return pd.DataFrame({
        "key": [key] * n, "battery_id": [h.battery_id] * n,
        "ordinal": np.fromiter((d.toordinal() for d in h.dates), np.int64, n),
        "age": h.age, "trips": h.trips, "duration": h.duration, "cycles": h.cycles, "lifetime": h.lifetime,
        "rated": h.rated, "interpolated": h.interpolated.astype(bool),
        "rows": [st["rows"]] + [0] * (n - 1), "duplicates_dropped": [st["duplicates_dropped"]] + [0] * (n - 1),
        "conflicting_duplicates": [st["conflicting_duplicates"]] + [0] * (n - 1),
        "half_day_rows": [st["half_day_rows"]] + [0] * (n - 1)})


def lake_histories(spark, lake, max_batteries: int | None = None, seed: int = 7):
    """-> (histories {key: BatteryHistory}, cleaning stats) of a sample of the lake's batteries."""
    import datetime as dt

    from pyspark.sql import functions as F

    from agent.cleaning import BatteryHistory
    from export.lake import tables as LT
    from export.lake.compact import spark_schema
    from export.lake.fs import LakeFS
    from export.lake.spark import StageProgress
    fs = LakeFS(spark, lake)
    daily = (spark.read.schema(spark_schema(LT.SCHEMAS[LT.DAILY])).parquet(fs.abs(LT.DAILY))
             .select(*LT.SCHEMAS[LT.DAILY].names))
    keys = daily.select("vehicle_id", "Battery_ID").distinct().withColumn(
        "_h", F.xxhash64("vehicle_id", "Battery_ID", F.lit(seed)))
    with StageProgress(spark, "train data") as progress:
        with progress.stage("sample batteries"):
            n_all = keys.count()
            if max_batteries and n_all > max_batteries:
                keys = keys.orderBy("_h").limit(max_batteries)
            picked = F.broadcast(keys.drop("_h"))
        schema = "key string, battery_id string, ordinal long, age double, trips double, duration double, " \
                 "cycles double, lifetime double, rated double, interpolated boolean, rows long, " \
                 "duplicates_dropped long, conflicting_duplicates long, half_day_rows long"
        with progress.stage("clean histories (agent cleaning per battery)"):
            clean = (daily.join(picked, ["vehicle_id", "Battery_ID"])
                     .groupBy("vehicle_id", "Battery_ID").applyInPandas(_clean_one, schema)
                     .orderBy("key", "ordinal").toPandas())
    histories = {}
    for key, g in clean.groupby("key", sort=True):
        dates = [dt.date.fromordinal(int(o)) for o in g["ordinal"]]
        histories[key] = BatteryHistory(str(g["battery_id"].iloc[0]), dates, g["age"].to_numpy(float),
                                        g["trips"].to_numpy(float), g["duration"].to_numpy(float),
                                        g["cycles"].to_numpy(float), g["lifetime"].to_numpy(float),
                                        g["rated"].to_numpy(float), g["interpolated"].to_numpy(bool))
    stats = {k: int(clean[k].sum()) for k in ("rows", "duplicates_dropped", "conflicting_duplicates", "half_day_rows")}
    stats.update(batteries_in_lake=int(n_all), batteries_sampled=len(histories),
                 days_interpolated=int(clean["interpolated"].sum()))
    log.info("lake %s: %d of %d batteries, %d rows", lake, len(histories), n_all, stats["rows"])
    return histories, stats


def is_lake(path) -> bool:
    from pathlib import Path
    p = Path(str(path).removeprefix("file://"))
    return "://" in str(path).replace("file://", "") or any(
        f.name[0] not in "._" for f in p.glob("daily/date=*/*.parquet"))
