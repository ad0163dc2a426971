"""`trey-export lake compact`: landing/ -> the curated daily, alerts and status tables,
exactly once by msg_id (a Spark job).

Bookkeeping in LAKE/_compaction/ (not a table):
  runs/<run>.json        the commit record of one run: the landing files it consumed and the
                         staged files it publishes (written atomically = the commit point)
  runs/<run>.done        the run's files are all published
  msg_ids/run=<run>/     msg_id, kind of every row any run published (the dedup index)
  staging/<run>/         a run's output before it is published

One run:
  0. recover: finish publishing every committed run without .done (roll forward); delete
     staging of runs that never committed (a crash before the commit; their landing files
     are still unconsumed, so they are simply compacted again);
  1. new = landing files no committed run consumed (nothing new: done — re-running is a no-op);
  2. Spark: read them, keep the first copy of each msg_id (by received_at, worker, file),
     drop msg_ids already in the index (a car re-sending rows days later, after their date
     partition was compacted), project payloads into each table's rows;
  3. write them and their msg_ids to staging/<run>/;
  4. commit: runs/<run>.json;
  5. publish: rename each staged file into its table partition (part-<run>-N.parquet), the
     index files into msg_ids/; write runs/<run>.done.
A crash anywhere leaves either no commit (the run never happened) or a commit that step 0
completes; readers only ever see whole files. Consumed landing files are recorded, not
deleted: `--expire-landing-days N` deletes consumed ones older than N days.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid

from export.lake import tables as LT
from export.lake.fs import LakeFS, uri
from export.lake.project import ROW, project, with_partition

log = logging.getLogger("export.lake.compact")
RUNS = f"{LT.COMPACTION_DIR}/runs"
INDEX = f"{LT.COMPACTION_DIR}/msg_ids"
STAGING = f"{LT.COMPACTION_DIR}/staging"


class CrashForTest(RuntimeError):
    """Raised at a named point by tests (fail_at=...) to stand for a crash of the job."""


def spark_schema(schema):
    """pyarrow schema -> Spark StructType (the lake's types only)."""
    import pyarrow as pa
    from pyspark.sql import types as S
    def conv(t):
        if pa.types.is_string(t):
            return S.StringType()
        if pa.types.is_int64(t):
            return S.LongType()
        if pa.types.is_float64(t):
            return S.DoubleType()
        if pa.types.is_boolean(t):
            return S.BooleanType()
        if pa.types.is_date32(t):
            return S.DateType()
        if pa.types.is_timestamp(t):
            return S.TimestampType()
        if pa.types.is_list(t):
            return S.ArrayType(conv(t.value_type))
        raise TypeError(f"no Spark type for {t}")
    return S.StructType([S.StructField(f.name, conv(f.type), f.nullable) for f in schema])


def _committed(fs: LakeFS) -> dict[str, dict]:
    return {r.rsplit("/", 1)[1][:-5]: fs.read_json(r) for r in fs.glob(f"{RUNS}/*.json")}


def _publish(fs: LakeFS, run: str, record: dict) -> None:
    for src, dst in record["moves"]:
        if not fs.rename(src, dst) and not fs.exists(dst):   # already published by a crashed run: fine
            raise OSError(f"compaction run {run}: cannot publish {src} -> {dst}")
    fs.sync()
    fs.write_json_atomic(f"{RUNS}/{run}.done", {"run": run, "at": time.time()})
    fs.delete(f"{STAGING}/{run}", recursive=True)


def recover(fs: LakeFS) -> dict:
    runs = _committed(fs)
    done = {r.rsplit("/", 1)[1][:-5] for r in fs.glob(f"{RUNS}/*.done")}
    rolled = 0
    for run in sorted(set(runs) - done):
        log.warning("compaction run %s was committed but not fully published: finishing it", run)
        _publish(fs, run, runs[run])
        rolled += 1
    orphans = set(fs.dirs(STAGING))
    for run in sorted(orphans - set(runs)):
        log.warning("compaction run %s crashed before its commit: discarding its staging", run)
        fs.delete(f"{STAGING}/{run}", recursive=True)
    return {"rolled_forward": rolled, "discarded": len(orphans - set(runs)), "runs": runs}


def compact(spark, lake, expire_landing_days: float | None = None, fail_at: str | None = None) -> dict:
    from export.lake.spark import StageProgress
    t0 = time.monotonic()
    fs = LakeFS(spark, lake)
    fs.require_root()
    rec = recover(fs)
    consumed = {f for r in rec["runs"].values() for f in r["consumed"]}
    landing = fs.glob(f"{LT.LANDING}/date=*/part-*.parquet")
    new = [f for f in landing if f not in consumed]
    stats = {"run": None, "landing_files": len(new), "landing_rows": 0, "duplicates": 0,
             "already_compacted": 0, "rows": {}, "rolled_forward": rec["rolled_forward"],
             "discarded_runs": rec["discarded"]}
    if new:
        run = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        stats["run"] = run
        with StageProgress(spark, "compact") as progress:
            stats.update(_run(spark, fs, run, new, progress))
        if fail_at == "staged":
            raise CrashForTest("staged")
        fs.write_json_atomic(f"{RUNS}/{run}.json", {"run": run, "consumed": new, "moves": stats.pop("moves"),
                                                    "rows": stats["rows"]})
        if fail_at == "committed":
            raise CrashForTest("committed")
        _publish(fs, run, fs.read_json(f"{RUNS}/{run}.json"))
    if expire_landing_days is not None:
        stats["landing_expired"] = expire(fs, consumed | set(new), expire_landing_days)
    stats["seconds"] = round(time.monotonic() - t0, 3)
    stats["rows_per_s"] = round(stats["landing_rows"] / stats["seconds"], 1) if stats["seconds"] else None
    return stats


def _run(spark, fs: LakeFS, run: str, new: list[str], progress) -> dict:
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    cols = LT.SCHEMAS[LT.LANDING].names      # not the `date=` directory Spark would infer as a column
    land = (spark.read.schema(spark_schema(LT.SCHEMAS[LT.LANDING])).parquet(*[fs.abs(f) for f in new])
            .select(*cols).withColumn("_file", F.input_file_name()))
    first = Window.partitionBy("msg_id").orderBy("received_at", "worker", "_file")
    ranked = land.withColumn("_n", F.row_number().over(first))
    # one pass over landing: every row with its copy number; the rest reads this cache
    ranked = ranked.withColumn("_seen", F.lit(False))
    if fs.glob(f"{INDEX}/run=*/*.parquet"):
        index = spark.read.parquet(fs.abs(INDEX)).select("msg_id").withColumn("_in_index", F.lit(True))
        ranked = ranked.join(index, "msg_id", "left").withColumn("_seen", F.col("_in_index").isNotNull()) \
            .drop("_in_index")
    with progress.stage(f"read {len(new)} landing files, drop duplicates"):
        ranked = ranked.persist()
        counts_ = {(r["first"], r["seen"]): r["n"] for r in ranked.groupBy(
            (F.col("_n") == 1).alias("first"), F.col("_seen").alias("seen")).agg(F.count("*").alias("n")).collect()}
    n_land = sum(counts_.values())
    n_uniq = counts_.get((True, False), 0) + counts_.get((True, True), 0)
    n_fresh = counts_.get((True, False), 0)
    fresh = ranked.where((F.col("_n") == 1) & ~F.col("_seen")).drop("_n", "_file", "_seen")
    out = {"landing_rows": n_land, "duplicates": n_land - n_uniq, "already_compacted": n_uniq - n_fresh,
           "rows": {}, "moves": []}
    counts = {r["kind"]: r["count"] for r in fresh.groupBy("kind").count().collect()} if n_fresh else {}
    n_tasks = max(1, spark.sparkContext.defaultParallelism)
    for kind, (table, _) in ROW.items():
        if not counts.get(kind):
            out["rows"][table] = 0
            continue
        part = fresh.where(F.col("kind") == kind)
        schema = spark_schema(with_partition(table))
        rows = part.mapInArrow(lambda it, k=kind: (project(k, b) for b in it), schema)
        stage = f"{STAGING}/{run}/{table}"
        with progress.stage(f"stage {table}"):
            # each date in one task (one file per date partition), the dates spread over every core:
            # a backfill writes thousands of small files and Spark would otherwise coalesce them
            # into one task writing them all in turn
            rows.repartition(n_tasks, LT.PARTITION).write.partitionBy(LT.PARTITION).parquet(fs.abs(stage))
        files = fs.glob(f"{stage}/{LT.PARTITION}=*/part-*.parquet")
        for i, f in enumerate(files):
            out["moves"].append([f, f"{table}/{f.split('/')[-2]}/part-{run}-{i:05d}.parquet"])
        out["rows"][table] = int(counts.get(kind, 0))
    idx = f"{STAGING}/{run}/msg_ids"
    with progress.stage("stage msg_id index"):
        fresh.select("msg_id", "kind").coalesce(1).write.parquet(fs.abs(idx))
    for i, f in enumerate(fs.glob(f"{idx}/part-*.parquet")):
        out["moves"].append([f, f"{INDEX}/run={run}/part-{i:05d}.parquet"])
    ranked.unpersist()
    return out


def expire(fs: LakeFS, consumed: set[str], days: float) -> int:
    """Delete consumed landing files older than `days` (never an unconsumed one)."""
    cutoff = time.time() - days * 86400
    n = 0
    for f in sorted(consumed):
        if fs.exists(f) and fs.mtime_s(f) < cutoff:
            fs.delete(f)
            n += 1
    return n
