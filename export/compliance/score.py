"""Batch compliance scoring of vehicle spec documents (JSON lines, agent/schema.py shape).

Streams the input: documents are read line by line and classified in chunks of notes
through the same bundle and ComplianceClassifier (onnxruntime) the car uses, so memory
stays flat for any input size. Writes
    OUT/vehicles.jsonl  one line per vehicle: vin, verdict, compliant (true / false / null
                        when nothing violates but some note is incomplete), counts, the
                        non-compliant and the undetermined components (with why, facts and
                        missing) and every component's result
    OUT/summary.csv     vin, components, noncompliant, compliant, max_p_noncompliant,
                        noncompliant_components, undetermined, undetermined_components
    OUT/rejected.jsonl  input lines that were not valid documents (line number, reason)
Documents are validated with the agent's own parser (agent.components.parse_document)."""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path

from agent import validate
from agent.components import SpecError, parse_document

log = logging.getLogger(__name__)
SUMMARY_COLUMNS = ["vin", "components", "noncompliant", "compliant", "max_p_noncompliant",
                   "noncompliant_components", "undetermined", "undetermined_components"]


def vehicle_result(vin: str, rows: list[dict], vehicle_id: str | None = None) -> dict:
    """One vehicle's line from its components' results (agent/regulation.py verdicts):
    non_compliant if any component is, compliant only if every one is, else undetermined.
    vehicle_id: the document's own, else its vin (the lake's key for the vehicle)."""
    bad = [r for r in rows if r.get("verdict", "compliant" if r["compliant"] else "non_compliant") == "non_compliant"]
    und = [r for r in rows if r.get("verdict") == "undetermined"]
    verdict = "non_compliant" if bad else "undetermined" if und else "compliant"
    return {"vin": vin, "vehicle_id": vehicle_id or vin, "verdict": verdict, "compliant": {"compliant": True, "non_compliant": False}.get(verdict),
            "components": len(rows), "noncompliant": len(bad), "undetermined": len(und),
            "noncompliant_components": bad, "undetermined_components": und, "verdicts": rows}


def parse_line(line: bytes) -> tuple[str, list[tuple[str, str]], str | None]:
    """One JSON line -> (vin, [(component, note)], vehicle_id or None) with the agent's own
    document parser; an optional `vehicle_id` must be a valid vehicle id."""
    doc = json.loads(line.decode("utf-8"))
    vin, comps = parse_document(doc)
    vid = doc.get("vehicle_id")
    if vid is not None:
        try:
            validate.vehicle_id(vid)
        except validate.InvalidInput as exc:
            raise SpecError(str(exc)) from None
    return vin, comps, vid


def rejection_reason(exc: Exception) -> str:
    return "bad_document" if isinstance(exc, SpecError) else (
        "not_utf8" if isinstance(exc, UnicodeDecodeError) else "bad_json")


def new_stats() -> dict:
    return {"vehicles": 0, "components": 0, "noncompliant_components": 0, "noncompliant_vehicles": 0,
            "undetermined_components": 0, "undetermined_vehicles": 0, "rejected": {}}


def count_vehicle(stats: dict, res: dict) -> None:
    """Adds one vehicle_result() to the run's counts (local and Spark runs alike)."""
    stats["vehicles"] += 1
    stats["components"] += res["components"]
    stats["noncompliant_components"] += res["noncompliant"]
    stats["noncompliant_vehicles"] += bool(res["noncompliant"])
    stats["undetermined_components"] += res["undetermined"]
    stats["undetermined_vehicles"] += res["verdict"] == "undetermined"


def score_documents(clf, docs: list, explain: bool, stats: dict):
    """[(vin, [(component, note)], vehicle_id)] -> yields (vehicles.jsonl object, summary.csv row) per
    vehicle, classifying all their notes in one call; counts into stats. The classifier's
    per-note fields are passed through as they come (one owner: agent/classify.py)."""
    texts = [note for _, comps, _ in docs for _, note in comps]
    verdicts = iter(clf.classify(texts, explain=explain))
    for vin, comps, vid in docs:
        rows = [{"component": name, **next(verdicts)} for name, _ in comps]
        res = vehicle_result(vin, rows, vid)
        bad, und = res["noncompliant_components"], res["undetermined_components"]
        count_vehicle(stats, res)
        yield (res, [vin, len(rows), len(bad), json.dumps(res["compliant"]),
                     f"{max(r['p_noncompliant'] for r in rows):.6f}",
                     ";".join(r["component"] for r in bad), len(und), ";".join(r["component"] for r in und)])


def score_file(clf, spec_path, out_dir, chunk_notes: int = 2048, progress: bool = True,
               explain: bool = True, lake=None) -> dict:
    """lake: also write LAKE/compliance/date=<UTC day of scored_at>/ (export/compliance/lake_rows.py)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats = new_stats()
    lake_out = None
    if lake is not None:
        import datetime as dt

        from export.compliance.lake_rows import LocalLakeWriter, compliance_rows
        scored_at = dt.datetime.now(dt.timezone.utc)
        model = f"{clf.name}@{clf.version}"
        lake_out = LocalLakeWriter(lake, scored_at)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=os.path.getsize(spec_path), unit="B", unit_scale=True, desc="scoring", mininterval=0.5)
    pending: list[tuple[str, list[tuple[str, str]], str | None]] = []
    n_pending = 0

    try:
        with open(spec_path, "rb") as fin, open(out / "vehicles.jsonl", "w", encoding="utf-8") as fv, \
                open(out / "summary.csv", "w", newline="", encoding="utf-8") as fc, \
                open(out / "rejected.jsonl", "w", encoding="utf-8") as fr:
            w = csv.writer(fc)
            w.writerow(SUMMARY_COLUMNS)

            def flush():
                nonlocal n_pending
                for doc, summary_row in score_documents(clf, pending, explain, stats):
                    fv.write(json.dumps(doc, ensure_ascii=False) + "\n")
                    w.writerow(summary_row)
                    if lake_out is not None:
                        lake_out.write(compliance_rows(doc, model, scored_at))
                pending.clear()
                n_pending = 0

            for lineno, raw in enumerate(fin, 1):
                if bar is not None:
                    bar.update(len(raw))
                line = raw.strip()
                if not line or line.startswith(b"#"):
                    continue
                try:
                    doc = parse_line(line)
                except (ValueError, SpecError) as exc:      # UnicodeDecodeError/JSONDecodeError are ValueErrors
                    reason = rejection_reason(exc)
                    if reason not in stats["rejected"]:
                        log.warning("%s:%d rejected (%s): %s", spec_path, lineno, reason, exc)
                    stats["rejected"][reason] = stats["rejected"].get(reason, 0) + 1
                    fr.write(json.dumps({"line": lineno, "reason": reason, "error": str(exc)[:200]}) + "\n")
                    continue
                pending.append(doc)
                n_pending += len(doc[1])
                if n_pending >= chunk_notes:
                    flush()
            flush()
    except BaseException:      # a half-written lake file is never published
        if lake_out is not None:
            lake_out.discard()
        raise
    if bar is not None:
        bar.close()
    stats["out"] = str(out)
    if lake_out is not None:
        stats["lake_rows"] = lake_out.rows
        stats["lake_file"] = lake_out.publish()
        stats["scored_at"] = scored_at.isoformat()
    return stats
