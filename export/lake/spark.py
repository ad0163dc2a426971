"""One way to get a SparkSession for every trey-export job: `--master` (default local[*],
embedded — nothing to install but Java) or whatever spark-submit configured; quiet logs
(errors only, no UI, no console bar) and one progress line per finished stage.

Quiet from the JVM's first line: sparkconf/log4j2.properties is on the driver's classpath
(SPARK_CONF_DIR) before it starts, and gives PySpark's gateway logger a level of its own, so
Spark does not announce "Setting default log level" as it does for a shell. The one notice
no log4j setting reaches — the JVM's "WARNING: Using incubator modules: jdk.incubator.vector"
(Spark's launcher always adds that module; no JVM flag silences it) — is dropped from the
embedded JVM's stderr as it is forwarded; every other line, errors above all, passes."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import time
import warnings
from pathlib import Path

log = logging.getLogger("export.spark")
CONF_DIR = Path(__file__).with_name("sparkconf")     # log4j2.properties: errors only
DEFAULT_MASTER = "local[*]"
JVM_NOTICES = (b"WARNING: Using incubator modules:",)     # dropped from the embedded JVM's stderr


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
    settings = {
        "spark.app.name": app,
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
    if master:
        settings["spark.master"] = master
    elif not os.environ.get("PYSPARK_GATEWAY_PORT"):     # not under spark-submit (it sets the master)
        settings["spark.master"] = DEFAULT_MASTER
    from pyspark import SparkConf, SparkContext
    spark_conf = SparkConf(loadDefaults=False).setAll(list(settings.items()))
    if SparkContext._gateway is None and not os.environ.get("PYSPARK_GATEWAY_PORT"):
        SparkContext(conf=spark_conf, gateway=_quiet_gateway(spark_conf))
    s = SparkSession.builder.config(conf=spark_conf).getOrCreate()
    s.sparkContext.setLogLevel("ERROR")
    key = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
    if not s.sparkContext.getConf().contains(key):
        # listing a table of many partition directories (a daily table has one per day) is a
        # Spark job of one task per directory by default (10,000 at most): ~2,000 tasks of a
        # millisecond's work each. One task per core lists the same in one wave.
        s.conf.set(key, str(max(1, s.sparkContext.defaultParallelism)))
    return s


def _quiet_gateway(conf):
    """Start the embedded JVM as PySpark does, its stderr forwarded line by line without JVM_NOTICES."""
    from subprocess import PIPE

    from pyspark.java_gateway import launch_gateway
    gateway = launch_gateway(conf, popen_kwargs={"stderr": PIPE})

    def forward(stream):
        for line in iter(stream.readline, b""):
            if not line.startswith(JVM_NOTICES):
                os.write(2, line)
    threading.Thread(target=forward, args=(gateway.proc.stderr,), name="spark-stderr", daemon=True).start()
    return gateway


def job_error(exc: BaseException) -> str | None:
    """A Spark, Hadoop or lake error a user can act on -> one line (None: not one of those, let
    it show as the bug it is). The JVM's stack trace stays out of the console."""
    if isinstance(exc, LakeError):
        return str(exc)
    mods = sys.modules
    if "py4j.protocol" in mods and isinstance(exc, mods["py4j.protocol"].Py4JJavaError):
        text = str(exc.java_exception.toString())
    elif "pyspark.errors" in mods and isinstance(exc, mods["pyspark.errors"].PySparkException):
        text = str(exc)
    else:
        return None
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    first = re.sub(r"^(?:[a-z_$][\w$]*\.)+(?=[A-Z][\w$]*(?::|$))", "", first)   # java.io.Foo: -> Foo:
    first = re.sub(r"\s*SQLSTATE: \w+$", "", first)
    return first.split("] ", 1)[-1] if first.startswith("[") else first          # [ERROR_CLASS] text


class LakeError(OSError):
    """The lake given is not one (a file, a missing directory): the message says which."""


class StageProgress:
    """One log line per stage of a job (what it did, seconds, the Spark tasks it ran), instead
    of Spark's console bar:  `with StageProgress(spark, "compact") as p: with p.stage("dedupe"): ...`"""

    _groups = 0                 # job groups are unique per process: a second run counts its own tasks

    def __init__(self, spark, what: str):
        self.sc, self.what = spark.sparkContext, what
        self.times: dict[str, float] = {}          # stage -> seconds (benchmarks read them)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sc.setLocalProperty("spark.jobGroup.id", None)

    @contextlib.contextmanager
    def stage(self, name: str):
        StageProgress._groups += 1
        group = f"{self.what}-{StageProgress._groups}"
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
        self.times[name] = round(time.monotonic() - t0, 2)
        log.info("%s: %s done in %.1f s (%d Spark tasks)", self.what, name, self.times[name], tasks)
