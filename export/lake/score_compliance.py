"""`trey-export score compliance --master M`: the batch compliance scoring of
export/compliance/score.py as a Spark job, for spec documents of any size.

Lines are read with Hadoop's line reader (textFile; it splits on LF, CR and CRLF and turns
bytes that are not UTF-8 into U+FFFD, so such a line is rejected as not_utf8), numbered, parsed by the agent's document parser and
classified by agent.classify.ComplianceClassifier — one verified bundle + ORT session per
executor process, `chunk_notes` notes per call — through score.py's own functions
(parse_line, rejection_reason, score_documents), so per-vehicle results and the summary are
those of the single-process path. The driver streams the results back in input order into
the same three files (vehicles.jsonl, summary.csv, rejected.jsonl). With `lake`, the scored
vehicles also become rows of LAKE/compliance/ (export/compliance/lake_rows.compliance_rows, the
single-process path's rows), appended by Spark's file commit (written, then renamed into place)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

_CLASSIFIERS: dict = {}
_REPLACEMENT = "\ufffd".encode()      # what Hadoop's line reader makes of bytes that are not UTF-8


def classifier(payload: dict, threads: int = 1):
    from agent.classify import ComplianceClassifier
    from export.lake.score_battery import executor_model
    return executor_model(_CLASSIFIERS, payload, lambda b: ComplianceClassifier.from_bundle(b, threads=threads))


def _score_partition(payload, chunk_notes, explain, threads):
    from agent.components import SpecError
    from export.compliance.score import new_stats, parse_line, rejection_reason, score_documents

    def run(items):
        clf = classifier(payload.value, threads)
        pending, lines, n = [], [], 0
        stats = new_stats()             # counted again on the driver from the documents

        def flush():
            for ln, (doc, row) in zip(lines, score_documents(clf, pending, explain, stats)):
                yield ln, "v", json.dumps(doc, ensure_ascii=False), json.dumps(row)
            pending.clear()
            lines.clear()

        for raw, idx in items:
            line = raw.strip()
            if not line or line.startswith(b"#"):
                continue
            if _REPLACEMENT in line:     # Hadoop decoded the line already: bytes that were not UTF-8
                yield idx + 1, "r", "not_utf8", "not UTF-8 text (replaced by the reader)"
                continue
            try:
                doc = parse_line(line)
            except (ValueError, SpecError) as exc:
                yield idx + 1, "r", rejection_reason(exc), str(exc)[:200]
                continue
            pending.append(doc)
            lines.append(idx + 1)
            n += len(doc[1])
            if n >= chunk_notes:
                yield from flush()
                n = 0
        yield from flush()
    return run


def score_spark(spark, bundle, spec_path, out_dir, trusted_keys=None, chunk_notes: int = 2048,
                explain: bool = True, threads: int = 1, lake=None) -> dict:
    import datetime as dt
    import logging

    from agent.bundle import verify_bundle

    from export.lake.fs import uri
    from export.lake.score_battery import bundle_payload
    from export.lake.spark import StageProgress
    log = logging.getLogger("export.compliance.score")
    payload = spark.sparkContext.broadcast(bundle_payload(bundle, trusted_keys))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from export.compliance.score import SUMMARY_COLUMNS, count_vehicle, new_stats
    stats = new_stats()
    lines = spark.sparkContext.textFile(uri(spec_path), minPartitions=spark.sparkContext.defaultParallelism,
                                        use_unicode=False).zipWithIndex()
    results = lines.mapPartitions(_score_partition(payload, chunk_notes, explain, threads)).sortBy(lambda r: r[0])
    progress = StageProgress(spark, "score compliance")
    lake_rows = None
    if lake is not None:           # classified once: the lake rows and the reports read the same results
        from export.compliance.lake_rows import compliance_rows, schema_with_partition
        from export.lake import tables as LT
        from export.lake.compact import spark_schema
        b = verify_bundle(bundle, trusted_keys)
        model, scored_at = f"{b.name}@{b.version}", dt.datetime.now(dt.timezone.utc)
        names = schema_with_partition().names
        results = results.persist()
        rows = results.filter(lambda r: r[1] == "v").flatMap(
            lambda r: [tuple(x[c] for c in names) for x in compliance_rows(json.loads(r[2]), model, scored_at)])
        with progress, progress.stage("parse + classify + write LAKE/compliance"):
            (spark.createDataFrame(rows, spark_schema(schema_with_partition())).write.mode("append")
             .partitionBy(LT.PARTITION).parquet(f"{uri(lake).rstrip('/')}/{LT.COMPLIANCE}"))
        lake_rows = rows.count()
    with progress, progress.stage("write reports" if lake is not None else "parse + classify + write reports"), \
            open(out / "vehicles.jsonl", "w", encoding="utf-8") as fv, \
            open(out / "summary.csv", "w", newline="", encoding="utf-8") as fc, \
            open(out / "rejected.jsonl", "w", encoding="utf-8") as fr:
        w = csv.writer(fc)
        w.writerow(SUMMARY_COLUMNS)
        for lineno, kind, a, b in results.toLocalIterator():
            if kind == "r":
                if a not in stats["rejected"]:
                    log.warning("%s:%d rejected (%s): %s", spec_path, lineno, a, b)
                stats["rejected"][a] = stats["rejected"].get(a, 0) + 1
                fr.write(json.dumps({"line": lineno, "reason": a, "error": b}) + "\n")
                continue
            count_vehicle(stats, json.loads(a))
            fv.write(a + "\n")
            w.writerow(json.loads(b))
    stats["out"] = str(out)
    if lake is not None:
        results.unpersist()
        stats.update(lake_rows=lake_rows, scored_at=scored_at.isoformat())
    return stats
