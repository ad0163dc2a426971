"""trey-export score compliance SPEC.jsonl --out REPORT_DIR [--lake URI] [--bundle DIR|TAR]

Streams vehicle spec documents through the compliance bundle (onnxruntime) with a progress
bar; writes REPORT_DIR/vehicles.jsonl, summary.csv and rejected.jsonl (see
export/compliance/score.py). With --master the same scoring runs as a Spark job
(export/lake/score_compliance.py; `local[*]` = every core of this machine, or a cluster's
master / spark-submit), with the same outputs. Exit 0 when every line was scored, 1 if some
were rejected, 2 if the input or bundle cannot be used. --lake also appends this run's rows
(one per component of every vehicle) to LAKE/compliance/ (docs/lake.md)."""

from __future__ import annotations

import json
import logging
import time


def configure(p) -> None:
    p.add_argument("spec", help="vehicle spec documents, JSON lines")
    p.add_argument("--out", required=True, help="report directory")
    p.add_argument("--lake", default=None, help="also write LAKE/compliance/date=D/ (docs/lake.md)")
    p.add_argument("--bundle", default=None, help="compliance bundle (default: shipped)")
    p.add_argument("--trusted-keys", default=None, help="public key file/dir (default: development keys)")
    p.add_argument("--chunk", type=int, default=2048, help="notes per model call")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    p.add_argument("--no-why", action="store_true", help="skip explanations (faster)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--master", default=None,
                   help="run on Spark (local[*], spark://..., yarn, k8s://...); default: one local process")


def main(args) -> int:
    from agent.bundle import DEFAULT_COMPLIANCE_BUNDLE, BundleError, verify_bundle
    from agent.classify import ComplianceClassifier
    from export.compliance.score import score_file

    log = logging.getLogger("trey.score")
    try:
        clf = ComplianceClassifier.from_bundle(
            verify_bundle(args.bundle or DEFAULT_COMPLIANCE_BUNDLE, args.trusted_keys), threads=args.threads)
    except (BundleError, ValueError) as exc:
        log.error("compliance bundle refused: %s", exc)
        return 2
    t0 = time.monotonic()
    try:
        if args.master:
            from export.lake.score_compliance import score_spark
            from export.lake.spark import session
            stats = score_spark(session(args.master, "trey-export score compliance"),
                                args.bundle or DEFAULT_COMPLIANCE_BUNDLE, args.spec, args.out,
                                trusted_keys=args.trusted_keys, chunk_notes=args.chunk, explain=not args.no_why,
                                threads=args.threads, lake=args.lake)
        else:
            stats = score_file(clf, args.spec, args.out, chunk_notes=args.chunk,
                               progress=not args.no_progress, explain=not args.no_why, lake=args.lake)
    except (OSError, ValueError) as exc:
        log.error("cannot score %s: %s", args.spec, exc)
        return 2
    dt = time.monotonic() - t0
    stats["seconds"] = round(dt, 3)
    stats["notes_per_s"] = round(stats["components"] / dt, 1) if dt > 0 else None
    print(json.dumps(stats))
    return 1 if stats["rejected"] else 0
