"""The test session's one SparkSession (local[2]; started by the `spark` fixture in conftest)."""

from __future__ import annotations


def start_spark():
    from export.lake.spark import session
    return session("local[2]", "trey-tests", conf={"spark.sql.shuffle.partitions": "2",
                                                    "spark.default.parallelism": "2"})
