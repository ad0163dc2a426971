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

from agent.components import SpecError, parse_document

log = logging.getLogger(__name__)
SUMMARY_COLUMNS = ["vin", "components", "noncompliant", "compliant", "max_p_noncompliant",
                   "noncompliant_components", "undetermined", "undetermined_components"]


def vehicle_result(vin: str, rows: list[dict]) -> dict:
    """One vehicle's line from its components' results (agent/regulation.py verdicts):
    non_compliant if any component is, compliant only if every one is, else undetermined."""
    bad = [r for r in rows if r.get("verdict", "compliant" if r["compliant"] else "non_compliant") == "non_compliant"]
    und = [r for r in rows if r.get("verdict") == "undetermined"]
    verdict = "non_compliant" if bad else "undetermined" if und else "compliant"
    return {"vin": vin, "verdict": verdict, "compliant": {"compliant": True, "non_compliant": False}.get(verdict),
            "components": len(rows), "noncompliant": len(bad), "undetermined": len(und),
            "noncompliant_components": bad, "undetermined_components": und, "verdicts": rows}


def score_file(clf, spec_path, out_dir, chunk_notes: int = 2048, progress: bool = True,
               explain: bool = True) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats = {"vehicles": 0, "components": 0, "noncompliant_components": 0, "noncompliant_vehicles": 0,
             "undetermined_components": 0, "undetermined_vehicles": 0, "rejected": {}}
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=os.path.getsize(spec_path), unit="B", unit_scale=True, desc="scoring", mininterval=0.5)
    pending: list[tuple[str, list[tuple[str, str]]]] = []
    n_pending = 0

    with open(spec_path, "rb") as fin, open(out / "vehicles.jsonl", "w", encoding="utf-8") as fv, \
            open(out / "summary.csv", "w", newline="", encoding="utf-8") as fc, \
            open(out / "rejected.jsonl", "w", encoding="utf-8") as fr:
        w = csv.writer(fc)
        w.writerow(SUMMARY_COLUMNS)

        def flush():
            nonlocal n_pending
            texts = [note for _, comps in pending for _, note in comps]
            verdicts = iter(clf.classify(texts, explain=explain))
            for vin, comps in pending:
                rows = []
                for name, _ in comps:
                    v = next(verdicts)
                    rows.append({"component": name, **v})
                res = vehicle_result(vin, rows)
                bad, und = res["noncompliant_components"], res["undetermined_components"]
                stats["vehicles"] += 1
                stats["components"] += len(rows)
                stats["noncompliant_components"] += len(bad)
                stats["noncompliant_vehicles"] += bool(bad)
                stats["undetermined_components"] += len(und)
                stats["undetermined_vehicles"] += res["verdict"] == "undetermined"
                fv.write(json.dumps(res, ensure_ascii=False) + "\n")
                w.writerow([vin, len(rows), len(bad), json.dumps(res["compliant"]),
                            f"{max(r['p_noncompliant'] for r in rows):.6f}",
                            ";".join(r["component"] for r in bad), len(und),
                            ";".join(r["component"] for r in und)])
            pending.clear()
            n_pending = 0

        for lineno, raw in enumerate(fin, 1):
            if bar is not None:
                bar.update(len(raw))
            line = raw.strip()
            if not line or line.startswith(b"#"):
                continue
            try:
                vin, comps = parse_document(json.loads(line.decode("utf-8")))
            except (ValueError, SpecError) as exc:      # UnicodeDecodeError/JSONDecodeError are ValueErrors
                reason = "bad_document" if isinstance(exc, SpecError) else (
                    "not_utf8" if isinstance(exc, UnicodeDecodeError) else "bad_json")
                if reason not in stats["rejected"]:
                    log.warning("%s:%d rejected (%s): %s", spec_path, lineno, reason, exc)
                stats["rejected"][reason] = stats["rejected"].get(reason, 0) + 1
                fr.write(json.dumps({"line": lineno, "reason": reason, "error": str(exc)[:200]}) + "\n")
                continue
            pending.append((vin, comps))
            n_pending += len(comps)
            if n_pending >= chunk_notes:
                flush()
        flush()
    if bar is not None:
        bar.close()
    stats["out"] = str(out)
    return stats
