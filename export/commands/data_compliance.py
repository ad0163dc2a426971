"""trey-export data compliance --notes N --seed S --out DIR [--vehicles M]

Writes DIR/notes.jsonl (labelled notes: id, text, label, style, part, year, material,
condition, and the facts: states {year, material, condition: violates/complies/not_stated},
verdict, year_value; with --field-frac F that share are field-style notes, export/compliance/
field_notes.py: facts missing, narrative, replacement, negation, several components), DIR/specs.jsonl (vehicle spec documents, the shared shape) and
DIR/specs_truth.jsonl (the rule's label of every spec component). Same seed, same files."""

from __future__ import annotations

import json
from pathlib import Path


def configure(p) -> None:
    p.add_argument("--notes", type=int, default=20000)
    p.add_argument("--vehicles", type=int, default=100, help="vehicle spec documents to write")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--field-frac", type=float, default=0.0, help="share of field-style notes (0..1)")
    p.add_argument("--out", default="data/compliance")


def main(args) -> int:
    from export.compliance.corpus import NoteGenerator

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from export.compliance.field_notes import FieldNoteGenerator
    gen = NoteGenerator(args.seed)
    fgen = FieldNoteGenerator(args.seed + 1)
    n_field = int(args.notes * max(0.0, min(1.0, args.field_frac)))
    pos = 0
    with open(out / "notes.jsonl", "w", encoding="utf-8") as fh:
        for k in range(args.notes):
            rec = fgen.note() if k >= args.notes - n_field else gen.note()
            pos += rec["label"] == 1
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    sgen = NoteGenerator(args.seed + 1)
    ncomp = nbad = 0
    with open(out / "specs.jsonl", "w", encoding="utf-8") as fs, \
            open(out / "specs_truth.jsonl", "w", encoding="utf-8") as ft:
        for _ in range(args.vehicles):
            doc, truth = sgen.spec()
            fs.write(json.dumps(doc, ensure_ascii=False) + "\n")
            ft.write(json.dumps({"vin": doc["vin"], "components": [
                {"component": t["part"], "label": t["label"], "year": t["year"], "material": t["material"],
                 "condition": t["condition"]} for t in truth]}) + "\n")
            ncomp += len(truth)
            nbad += sum(t["label"] for t in truth)
    print(json.dumps({"out": str(out), "notes": args.notes, "noncompliant_notes": pos,
                      "vehicles": args.vehicles, "components": ncomp, "noncompliant_components": nbad}))
    return 0
