"""trey-export score compliance SPEC.jsonl --out REPORT_DIR [--bundle DIR|TAR]

Streams vehicle spec documents through the compliance bundle (onnxruntime) with a progress
bar; writes REPORT_DIR/vehicles.jsonl, summary.csv and rejected.jsonl (see
export/compliance/score.py). Exit 0 when every line was scored, 1 if some were rejected,
2 if the input or bundle cannot be used."""

from __future__ import annotations

import json
import logging
import time


def configure(p) -> None:
    p.add_argument("spec", help="vehicle spec documents, JSON lines")
    p.add_argument("--out", required=True, help="report directory")
    p.add_argument("--bundle", default=None, help="compliance bundle (default: shipped)")
    p.add_argument("--trusted-keys", default=None, help="public key file/dir (default: development keys)")
    p.add_argument("--chunk", type=int, default=2048, help="notes per model call")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    p.add_argument("--no-why", action="store_true", help="skip explanations (faster)")
    p.add_argument("--no-progress", action="store_true")


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
        stats = score_file(clf, args.spec, args.out, chunk_notes=args.chunk,
                           progress=not args.no_progress, explain=not args.no_why)
    except OSError as exc:
        log.error("cannot score %s: %s", args.spec, exc)
        return 2
    dt = time.monotonic() - t0
    stats["seconds"] = round(dt, 3)
    stats["notes_per_s"] = round(stats["components"] / dt, 1) if dt > 0 else None
    print(json.dumps(stats))
    return 1 if stats["rejected"] else 0
