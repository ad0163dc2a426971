"""Training data from the lake, built by Spark: the curated daily table -> a seeded sample of
batteries -> each cleaned by the agent's cleaning in a Spark task (applyInPandas, one battery
per call) and kept in Spark as one row per battery -> the normalisation inputs and then the
planned, sampled windows of each battery, built in Spark tasks by export/battery/data.py's
own functions (battery_stats, battery_windows) -> streamed to the trainer into arrays of
exactly the sample's size (export.battery.data.training_data decides split, scaler and sample).

The sample of batteries is what one trainer needs: up to `max_batteries`, picked by a seeded
hash of (vehicle_id, Battery_ID), so the same lake and seed always give the same fleet; the
windows are capped by training_data (max_windows). Nothing on the driver grows with the lake:
it holds battery ids, per-battery statistics, the origins it planned and the windows it asked
for. A battery is identified by `vehicle_id/Battery_ID` (two cars may report the same id)."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np

from agent.schema import DAILY_COLUMNS

log = logging.getLogger(__name__)
SERIES = ("age", "trips", "duration", "cycles", "lifetime", "rated")      # float64 arrays as bytes
CLEANING = ("rows", "duplicates_dropped", "conflicting_duplicates", "half_day_rows", "days_interpolated",
            "batteries_without_cycles")
CLEAN_SCHEMA = ("key string, battery_id string, ordinal0 long, days long, "
                + ", ".join(f"{c} binary" for c in SERIES) + ", interpolated binary, "
                + ", ".join(f"{c} long" for c in CLEANING))
STATS_SCHEMA = "key string, days long, lv_n long, lv_mean double, lv_m2 double, means28 binary"
# one battery's windows: each array's bytes (shapes follow from the number of origins)
PART = {"x": np.float32, "level": np.float32, "y": np.float32, "ordinal": np.int64, "lifetime": np.float64,
        "rated": np.float64}
WINDOWS_SCHEMA = "key string, " + ", ".join(f"{c} binary" for c in PART)
CHUNK_BYTES = 64 << 20         # windows per Spark task and per piece streamed to the trainer


def _clean_one(pdf):
    """All rows of one battery (pandas) -> one row: its clean series and what cleaning fixed."""
    import pandas as pd

    from agent.cleaning import clean_history
    pdf = pdf.sort_values(["Date", "received_at"], kind="stable")
    key = f"{pdf['vehicle_id'].iloc[0]}/{pdf['Battery_ID'].iloc[0]}"
    recs = pdf[list(DAILY_COLUMNS)].astype(object).where(pdf[list(DAILY_COLUMNS)].notna(), None)
    recs["Date"] = pdf["Date"].astype(str)
    res = clean_history(recs.to_dict("records"))
    row = {"key": key, "battery_id": str(pdf["Battery_ID"].iloc[0]), "ordinal0": 0, "days": 0,
           **{c: b"" for c in SERIES}, "interpolated": b"", **{c: int(res.stats.get(c, 0)) for c in CLEANING}}
    if res.batteries:                      # else a battery without cycles: counted, never trained on
        h = next(iter(res.batteries.values()))
        row.update(ordinal0=h.dates[0].toordinal(), days=len(h), interpolated=h.interpolated.astype(bool).tobytes(),
                   **{c: np.asarray(getattr(h, c), np.float64).tobytes() for c in SERIES})
    return pd.DataFrame([row])


def history_of(row: dict):
    """A row of the clean table -> agent.cleaning.BatteryHistory (consecutive days from ordinal0)."""
    from agent.cleaning import BatteryHistory
    o0, n = int(row["ordinal0"]), int(row["days"])
    arr = {c: np.frombuffer(row[c], np.float64) for c in SERIES}
    return BatteryHistory(row["battery_id"], [dt.date.fromordinal(o0 + i) for i in range(n)], arr["age"],
                          arr["trips"], arr["duration"], arr["cycles"], arr["lifetime"], arr["rated"],
                          np.frombuffer(row["interpolated"], bool))


def _stats_rows(batches, params):
    import pyarrow as pa

    from export.battery.data import battery_stats
    for b in batches:
        out = {"key": [], "days": [], "lv_n": [], "lv_mean": [], "lv_m2": [], "means28": []}
        for row in b.to_pylist():
            s = battery_stats(history_of(row), params)
            for k, v in zip(("key", "days", "lv_n", "lv_mean", "lv_m2", "means28"),
                            (row["key"], s["days"], *s["lv"], s["means28"].tobytes())):
                out[k].append(v)
        yield pa.RecordBatch.from_pydict(out)


def _window_rows(batches, params):
    import pyarrow as pa

    from export.battery.data import battery_windows
    for b in batches:
        for row in b.to_pylist():          # one battery per output batch: a few MB at most
            part = battery_windows(history_of(row), np.frombuffer(row["ends"], np.int64), params)
            yield pa.RecordBatch.from_pydict({"key": [row["key"]],
                                              **{c: [np.ascontiguousarray(part[c], t).tobytes()] for c, t in PART.items()}})


class LakeHistories:
    """A seeded sample of the lake's batteries, cleaned in Spark and kept there (persisted, one
    row per battery) for the jobs export.battery.data.training_data asks for: `stats(params)`
    and `windows(requests, params)`; `histories()` brings the whole sample over (tests, small
    lakes). `close()` releases what Spark keeps."""

    truth = None                       # the lake has no generator truth

    def __init__(self, spark, lake, max_batteries: int | None = None, seed: int = 7):
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        from export.lake import tables as LT
        from export.lake.compact import spark_schema
        from export.lake.fs import LakeFS
        from export.lake.spark import StageProgress
        self.spark, self.lake = spark, lake
        self.progress = StageProgress(spark, "train data")
        fs = LakeFS(spark, lake)
        daily = (spark.read.schema(spark_schema(LT.SCHEMAS[LT.DAILY])).parquet(fs.abs(LT.DAILY))
                 .select(*LT.SCHEMAS[LT.DAILY].names))
        keys = daily.select("vehicle_id", "Battery_ID").distinct().withColumn(
            "_h", F.xxhash64("vehicle_id", "Battery_ID", F.lit(seed)))
        with self.progress.stage("sample batteries"):
            n_all = keys.count()
            if max_batteries and n_all > max_batteries:
                keys = keys.orderBy("_h", "vehicle_id", "Battery_ID").limit(max_batteries)
            picked = F.broadcast(keys.drop("_h"))
        self._cached = (daily.join(picked, ["vehicle_id", "Battery_ID"])
                        .groupBy("vehicle_id", "Battery_ID").applyInPandas(_clean_one, CLEAN_SCHEMA)
                        .persist(StorageLevel.MEMORY_AND_DISK))
        with self.progress.stage("clean histories (agent cleaning per battery)"):
            meta = self._cached.select("key", "days", *CLEANING).collect()
        self.ids = sorted(r["key"] for r in meta if r["days"])
        self.days = {r["key"]: int(r["days"]) for r in meta if r["days"]}
        self.cleaning = {c: int(sum(r[c] for r in meta)) for c in CLEANING}
        self.cleaning.update(batteries_in_lake=int(n_all), batteries_sampled=len(self.ids))
        self.clean = self._cached.where("days > 0")
        log.info("lake %s: %d of %d batteries, %d rows", lake, len(self.ids), n_all, self.cleaning["rows"])

    def stats(self, params: dict) -> dict[str, dict]:
        with self.progress.stage("normalisation inputs per battery"):
            rows = self.clean.mapInArrow(lambda it: _stats_rows(it, params), STATS_SCHEMA).collect()
        return {r["key"]: {"days": r["days"], "lv": (r["lv_n"], r["lv_mean"], r["lv_m2"]),
                           "means28": np.frombuffer(r["means28"], np.float64)} for r in rows}

    def windows(self, requests, params: dict):
        """(key, origins, truth: None) of the planned sample -> yields (key, windows) as
        export.battery.data.battery_windows built them in Spark tasks. The requests go out as
        one small broadcast table; the windows are built in parallel into Spark's storage
        (disk), then streamed to this process one piece (~CHUNK_BYTES) at a time."""
        import pandas as pd
        from pyspark import StorageLevel
        from pyspark.sql import functions as F
        w, f = int(params["window"]), len(params["features"])
        per_window = (w * f + 1 + int(params["horizon"])) * 4 + 24
        sizes = np.array([len(e) * per_window + self.days[k] * 8 * (len(SERIES) + 1) for k, e, _ in requests])
        n_chunks = max(self.spark.sparkContext.defaultParallelism, int(sizes.sum() // CHUNK_BYTES) + 1)
        chunk = np.minimum((np.cumsum(sizes) - sizes) * n_chunks // max(int(sizes.sum()), 1), n_chunks - 1)
        req = pd.DataFrame({"key": [k for k, _, _ in requests],
                            "ends": [np.asarray(e, np.int64).tobytes() for _, e, _ in requests],
                            "chunk": chunk.astype(np.int32)})
        req = self.spark.createDataFrame(req, "key string, ends binary, chunk int")
        built = (self.clean.join(F.broadcast(req), "key").repartition(n_chunks, "chunk")
                 .mapInArrow(lambda it: _window_rows(it, params), WINDOWS_SCHEMA)
                 .persist(StorageLevel.DISK_ONLY))
        try:
            with self.progress.stage(f"build {sum(len(e) for _, e, _ in requests)} windows "
                                     f"of {len(requests)} batteries ({n_chunks} tasks)"):
                built.count()
            with self.progress.stage("stream windows to the trainer"):
                for r in built.toLocalIterator():
                    ends_n = len(r["ordinal"]) // 8
                    part = {c: np.frombuffer(r[c], t) for c, t in PART.items()}
                    part["x"] = part["x"].reshape(ends_n, w, f)
                    part["level"] = part["level"].reshape(ends_n, 1)
                    part["y"] = part["y"].reshape(ends_n, -1)
                    yield r["key"], part
        finally:
            built.unpersist()

    def histories(self) -> dict:
        return {r["key"]: history_of(r.asDict()) for r in sorted(self.clean.collect(), key=lambda r: r["key"])}

    def close(self) -> None:
        self._cached.unpersist()
        self.progress.__exit__(None, None, None)


def is_lake(path) -> bool:
    from pathlib import Path
    p = Path(str(path).removeprefix("file://"))
    return "://" in str(path).replace("file://", "") or any(
        f.name[0] not in "._" for f in p.glob("daily/date=*/*.parquet"))
