"""One way to get a SparkSession for every trey-export job: `--master` (default local[*],
embedded — nothing to install but Java) or whatever spark-submit configured; quiet logs
(errors only, no UI, no console bar) and one progress line per finished stage."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from pathlib import Path

log = logging.getLogger("export.spark")
CONF_DIR = Path(__file__).with_name("sparkconf")     # log4j2.properties: errors only
DEFAULT_MASTER = "local[*]"


def add_master_arg(p) -> None:
    p.add_argument("--master", default=None,
                   help=f"Spark master (default {DEFAULT_MASTER}, embedded; under spark-submit: its --master)")


def session(master: str | None = None, app: str = "trey-export", conf: dict | None = None):
    """The active session (spark-submit's, or a test's) or a new one on `master`."""
    warnings.filterwarnings("ignore", message=".*does not yet fully support pandas.*")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)      # executors run this interpreter
    os.environ.setdefault("SPARK_CONF_DIR", str(CONF_DIR))       # on the JVM's classpath: our log4j2
    from pyspark.sql import SparkSession
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    b = SparkSession.builder.appName(app)
    if master:
        b = b.master(master)
    elif not os.environ.get("PYSPARK_GATEWAY_PORT"):     # not under spark-submit (it sets the master)
        b = b.master(DEFAULT_MASTER)
    settings = {
        "spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.caseSensitive": "true",      # daily has both `Date` (column) and `date` (partition)
        "spark.sql.shuffle.partitions": "8",
        "spark.sql.files.openCostInBytes": str(256 * 1024),   # pack a table's small daily files into few tasks
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
        **(conf or {})}
    for k, v in settings.items():
        b = b.config(k, v)
    s = b.getOrCreate()
    s.sparkContext.setLogLevel("ERROR")
    return s


class StageProgress:
    """One log line per stage of a job (what it did, seconds, the Spark tasks it ran), instead
    of Spark's console bar:  `with StageProgress(spark, "compact") as p: with p.stage("dedupe"): ...`"""

    def __init__(self, spark, what: str):
        self.sc, self.what = spark.sparkContext, what
        self._n = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sc.setLocalProperty("spark.jobGroup.id", None)

    @contextlib.contextmanager
    def stage(self, name: str):
        self._n += 1
        group = f"{self.what}-{self._n}"
        self.sc.setJobGroup(group, f"{self.what}: {name}")
        t0 = time.monotonic()
        yield
        tasks = 0
        try:
            tracker = self.sc.statusTracker()
            for jid in tracker.getJobIdsForGroup(group) or []:
                job = tracker.getJobInfo(jid)
                for sid in (job.stageIds if job else []):
                    info = tracker.getStageInfo(sid)
                    tasks += info.numCompletedTasks if info else 0
        except Exception:       # progress is best-effort; never fail a job over it
            pass
        log.info("%s: %s done in %.1f s (%d Spark tasks)", self.what, name, time.monotonic() - t0, tasks)
