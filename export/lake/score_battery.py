"""`trey-export score battery` on Spark: every battery's history -> the battery bundle ->
OUT/forecasts/date=<as_of>/ (the lake's forecasts table) + OUT/forecast_summary.csv.

Each executor process verifies the same signed bundle (shipped to it as bytes, checked with
agent.bundle.verify_bundle against the trusted keys) and keeps one ONNX Runtime session
(agent.forecast.BatteryForecaster). Rows reach it through mapInArrow, sorted by battery, and
are cleaned, windowed, scored and judged by the agent's own batch code (clean_columns /
clean_history, forecast_batch) many batteries at a time — so the answers are those of
`trey-agent forecast` on the same rows.

Inputs: --lake (the curated daily table; a battery is (vehicle_id, Battery_ID); duplicates of
a day keep the first received) or --history CSV (seed schema, raw; rows keep file order, so
duplicates resolve as in the CLI)."""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from export.lake import tables as LT

log = logging.getLogger("export.score.battery")
CHUNK_BATTERIES = 512          # batteries per batched cleaning + ORT call on an executor
_SEP = "\x1f"                  # vehicle_id / Battery_ID inside one cleaning key
_FORECASTERS: dict = {}        # one verified bundle + ORT session per executor process


def bundle_payload(path, trusted_keys=None) -> dict:
    """A bundle (dir or .tar) and the trusted keys as bytes, to verify again where it runs."""
    p = Path(path)
    files = {f.name: f.read_bytes() for f in sorted(p.iterdir()) if f.is_file()} if p.is_dir() else \
        {p.name: p.read_bytes()}
    keys = None
    if trusted_keys:
        keys = {}
        for k in ([trusted_keys] if isinstance(trusted_keys, (str, Path)) else trusted_keys):
            kp = Path(k)
            for f in (sorted(x for x in kp.iterdir() if x.suffix in (".pub", ".pem")) if kp.is_dir() else [kp]):
                keys[f.name] = f.read_bytes()
    return {"dir": p.is_dir(), "files": files, "keys": keys}


def executor_model(cache: dict, payload: dict, build):
    """The model of a bundle_payload() on this executor process: the bundle is written out,
    verified against the shipped keys again (never trusted because the driver checked it),
    and build(verified bundle) is kept per bundle content — one ORT session per process."""
    import hashlib

    from agent.bundle import verify_bundle
    h = hashlib.sha256(b"".join(k.encode() + v for k, v in sorted(payload["files"].items()))).hexdigest()
    if h not in cache:
        d = Path(tempfile.mkdtemp(prefix="trey-bundle-"))
        for name, data in payload["files"].items():
            (d / name).write_bytes(data)
        keys = None
        if payload["keys"]:
            kd = d / "_keys"
            kd.mkdir()
            for name, data in payload["keys"].items():
                (kd / name).write_bytes(data)
            keys = [str(kd)]
        target = d if payload["dir"] else d / next(iter(payload["files"]))
        cache[h] = build(verify_bundle(target, keys))
    return cache[h]


def forecaster(payload: dict):
    from agent.forecast import BatteryForecaster
    return executor_model(_FORECASTERS, payload, BatteryForecaster.from_bundle)


def answers_to_batch(answers: list[dict], vehicle_ids: list, scored_at) -> pa.RecordBatch:
    schema = LT.SCHEMAS[LT.FORECASTS].append(pa.field(LT.PARTITION, pa.date32(), False))
    as_of = [dt.date.fromisoformat(a["as_of"]) for a in answers]
    cols = {
        "battery_id": [a["battery_id"] for a in answers], "vehicle_id": vehicle_ids, "as_of": as_of,
        "lifetime_cycles": [a["lifetime_cycles"] for a in answers],
        "rated_cycles": [a["rated_cycles"] for a in answers],
        "forecast_daily_cycles": [a["forecast_daily_cycles"] for a in answers],
        "projected_lifetime_cycles_30d": [a["projected_lifetime_cycles_30d"] for a in answers],
        "days_to_rated": [a["days_to_rated"] for a in answers], "alert": [a["alert"] for a in answers],
        "fallback": [a["fallback"] for a in answers], "history_days": [a["history_days"] for a in answers],
        "model": [f"{a['model']['name']}@{a['model']['version']}" for a in answers],
        "scored_at": [scored_at] * len(answers), LT.PARTITION: as_of}
    return pa.RecordBatch.from_pydict(cols, schema=schema)


def battery_codes(t: pa.Table) -> tuple[np.ndarray, list[str]]:
    """Daily-table rows sorted by (vehicle_id, Battery_ID) -> (code per row 0, 1, ..., one name
    `vehicle_id<US>Battery_ID` per code): a battery starts where either column changes."""
    vid, bid = t.column("vehicle_id").combine_chunks(), t.column("Battery_ID").combine_chunks()
    n = len(t)
    change = np.zeros(n, bool)
    if n:
        change[0] = True
        change[1:] = (pc.not_equal(vid[1:], vid[:-1]).to_numpy(zero_copy_only=False)
                      | pc.not_equal(bid[1:], bid[:-1]).to_numpy(zero_copy_only=False))
    starts = pa.array(np.flatnonzero(change))
    names = [f"{v}{_SEP}{b}" for v, b in zip(vid.take(starts).to_pylist(), bid.take(starts).to_pylist())]
    return np.cumsum(change) - 1, names


def _score_lake_rows(fc, t: pa.Table, scored_at) -> pa.RecordBatch:
    """Daily-table rows of whole batteries (sorted) -> forecasts."""
    from agent.cleaning import NUMERIC_COLUMNS, clean_columns
    codes, names = battery_codes(t)
    days = t.column("Date").cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
    values = {c: t.column(c).cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
              for c in NUMERIC_COLUMNS if c in t.column_names}
    batch, _stats, _skipped = clean_columns(codes, days, values, names=names)
    answers = fc.forecast_batch(batch)
    vids = []
    for a in answers:
        v, b = a["battery_id"].split(_SEP, 1)
        a["battery_id"] = b
        vids.append(v)
    return answers_to_batch(answers, vids, scored_at)


def _score_csv_rows(fc, t: pa.Table, scored_at) -> pa.RecordBatch:
    from agent.cleaning import clean_history
    rows = t.drop_columns([c for c in ("_row",) if c in t.column_names]).to_pylist()
    res = clean_history(rows)
    return answers_to_batch(fc.forecast_batch(res.batch), [None] * len(res.batch), scored_at)


def _chunks(batches, key_cols: list[str], limit: int):
    """Sorted record batches -> tables of whole batteries, about `limit` batteries each."""
    carry = None
    for rb in batches:
        t = pa.Table.from_batches([rb])
        t = t if carry is None else pa.concat_tables([carry, t])
        if not len(t):
            continue
        k = _keys(t, key_cols)
        change = np.flatnonzero(k[1:] != k[:-1]) + 1
        if len(change) >= limit:
            cut = int(change[-1])                      # the last battery may continue: carry it
            yield t.slice(0, cut)
            carry = t.slice(cut)
        else:
            carry = t
    if carry is not None and len(carry):
        yield carry


def _keys(t: pa.Table, key_cols: list[str]) -> np.ndarray:
    """A code per row that changes exactly where the battery (key columns) changes."""
    import pyarrow.compute as pc
    n = len(t)
    change = np.zeros(n, bool)
    if n:
        change[0] = True
        for c in key_cols:
            col = t.column(c).combine_chunks()
            change[1:] |= pc.fill_null(pc.not_equal(col[1:], col[:-1]), True).to_numpy(zero_copy_only=False)
    return np.cumsum(change)


def score_battery(spark, out, lake=None, history=None, bundle=None, trusted_keys=None,
                  chunk: int = CHUNK_BATTERIES) -> dict:
    from pyspark.sql import functions as F

    from agent.bundle import DEFAULT_BATTERY_BUNDLE, verify_bundle
    from agent.cleaning import CleaningError
    from export.lake.compact import spark_schema
    from export.lake.fs import LakeFS, uri
    from export.lake.spark import StageProgress
    bundle = str(bundle or DEFAULT_BATTERY_BUNDLE)
    b = verify_bundle(bundle, trusted_keys)                 # refuse early, on the driver too
    payload = spark.sparkContext.broadcast(bundle_payload(bundle, trusted_keys))
    scored_at = dt.datetime.now(dt.timezone.utc)
    out_schema = spark_schema(LT.SCHEMAS[LT.FORECASTS].append(pa.field(LT.PARTITION, pa.date32(), False)))
    n_parts = max(1, spark.sparkContext.defaultParallelism)      # one scoring task per core
    progress = StageProgress(spark, "score battery")
    if lake is not None:
        fs = LakeFS(spark, lake)
        with progress.stage("list the daily table"):
            rows = (spark.read.schema(spark_schema(LT.SCHEMAS[LT.DAILY])).parquet(fs.abs(LT.DAILY))
                    .select(*LT.SCHEMAS[LT.DAILY].names))
        keys = ["vehicle_id", "Battery_ID"]
        rows = rows.repartition(n_parts, *keys).sortWithinPartitions(*keys, "Date", "received_at", "msg_id")
        score = _score_lake_rows
    else:
        rows = (spark.read.option("header", True).option("inferSchema", False).csv(uri(history))
                .withColumn("_row", F.monotonically_increasing_id()))
        keys = ["Battery_ID"]
        rows = rows.repartition(n_parts, *keys).sortWithinPartitions(*keys, "_row")
        score = _score_csv_rows

    def run(batches):
        fc = forecaster(payload.value)
        for t in _chunks(batches, keys, chunk):
            yield score(fc, t, scored_at)

    forecasts = rows.mapInArrow(run, out_schema).persist()     # written, then summarised: scored once
    dest = f"{uri(out).rstrip('/')}/{LT.FORECASTS}"
    with progress:
        with progress.stage("read, clean + forecast, write forecasts"):
            try:
                # one file per as_of date, not one per date per task (retired batteries end on
                # many dates: with every task writing each date, files multiply by the tasks)
                forecasts.repartition(n_parts, LT.PARTITION).write.mode("append").partitionBy(
                    LT.PARTITION).parquet(dest)
            except Exception as exc:                  # a malformed row: say which, not a JVM trace
                msg = str(exc)
                if "CleaningError" in msg:
                    line = [ln for ln in msg.splitlines() if "CleaningError" in ln][-1]
                    raise CleaningError(0, line.split("CleaningError:", 1)[-1].strip()) from None
                raise
        with progress.stage("per-day summary"):
            summary = (forecasts.groupBy(F.col("as_of").cast("string").alias("as_of"))
                       .agg(F.count("*").alias("batteries"), F.sum(F.col("alert").cast("int")).alias("alerts"),
                            F.sum(F.col("fallback").isNotNull().cast("int")).alias("fallbacks"))
                       .orderBy("as_of").toPandas())
    forecasts.unpersist()
    local = out if "://" not in str(out) or str(out).startswith("file://") else None
    if local is not None:
        p = Path(str(local).removeprefix("file://"))
        p.mkdir(parents=True, exist_ok=True)
        summary.to_csv(p / "forecast_summary.csv", index=False)
    else:
        spark.createDataFrame(summary).coalesce(1).write.mode("overwrite").option("header", True).csv(
            f"{str(out).rstrip('/')}/forecast_summary")
    return {"batteries": int(summary["batteries"].sum()) if len(summary) else 0,
            "alerts": int(summary["alerts"].sum()) if len(summary) else 0,
            "model": f"{b.name}@{b.version}", "scored_at": scored_at.isoformat(), "out": dest,
            "stages_s": progress.times}
