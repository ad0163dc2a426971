"""One way to get a SparkSession for every trey-export job: `--master` (default local[*],
embedded — nothing to install but Java) or whatever spark-submit configured; quiet logs
(errors only, no UI, no console bar) and one progress line per finished stage."""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from pathlib import Path

log = logging.getLogger("export.spark")
LOG4J = Path(__file__).with_name("log4j2.properties")
DEFAULT_MASTER = "local[*]"


def add_master_arg(p) -> None:
    p.add_argument("--master", default=None,
                   help=f"Spark master (default {DEFAULT_MASTER}, embedded; under spark-submit: its --master)")


def session(master: str | None = None, app: str = "trey-export", conf: dict | None = None):
    """The active session (spark-submit's, or a test's) or a new one on `master`."""
    warnings.filterwarnings("ignore", message=".*does not yet fully support pandas.*")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)      # executors run this interpreter
    from pyspark.sql import SparkSession
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    b = SparkSession.builder.appName(app)
    if master:
        b = b.master(master)
    elif not os.environ.get("PYSPARK_GATEWAY_PORT"):     # not under spark-submit (it sets the master)
        b = b.master(DEFAULT_MASTER)
    java = f"-Dlog4j2.configurationFile=file:{LOG4J}"
    settings = {
        "spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": java, "spark.executor.extraJavaOptions": java,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.caseSensitive": "true",      # daily has both `Date` (column) and `date` (partition) "spark.sql.shuffle.partitions": "8",
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
    """Logs one line per completed Spark stage (name, tasks, seconds) while a job runs."""

    def __init__(self, spark, what: str, every_s: float = 0.5):
        self.sc, self.what, self.every = spark.sparkContext, what, every_s
        self._stop = threading.Event()
        self._seen: set[int] = set()
        self._thread = threading.Thread(target=self._run, daemon=True, name="stage-progress")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(2)
        self._poll(final=True)

    def _poll(self, final: bool = False) -> None:
        try:
            tracker = self.sc.statusTracker()
            for jid in tracker.getJobIdsForGroup(None) or []:
                job = tracker.getJobInfo(jid)
                for sid in (job.stageIds if job else []):
                    if sid in self._seen:
                        continue
                    info = tracker.getStageInfo(sid)
                    if info is None:
                        continue
                    if info.numTasks and info.numCompletedTasks + info.numFailedTasks >= info.numTasks:
                        self._seen.add(sid)
                        log.info("%s: stage %d done (%s, %d tasks)", self.what, sid,
                                 info.name.split(" at ")[0], info.numTasks)
        except Exception:       # the tracker is best-effort; never fail a job over progress
            pass

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._poll()
