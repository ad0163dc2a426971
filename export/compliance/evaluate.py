"""Held-out evaluation of a compliance bundle through the agent's own classifier (ONNX
Runtime, int8 — what the car runs):

    python -m export.compliance.evaluate [BUNDLE] [--notes N] [--seed S] [--errors FILE]
                                         [--min-p-complies P ...]

Sets (none of them reachable by the training generators' seeds or templates):
  classic      corpus.py in its held-out styles and years (the old held-out set)
  author       the second author (heldout_author.py): other phrasings, fillers, typos
  handwritten  export/compliance/data/handwritten.jsonl, labelled by hand
Per set: verdict accuracy, accuracy per category (phenomenon), notes whose true verdict is
not compliant but were called compliant, and the year value's accuracy."""

from __future__ import annotations

import argparse
import json
import sys

from agent import regulation as R


def heldout_sets(n: int = 2000, seed: int = 424242) -> dict[str, list[dict]]:
    from export.compliance import corpus as C
    from export.compliance import heldout_author as HA
    g = C.NoteGenerator(seed, remarks=C.REMARKS_HOLDOUT)
    classic = [g.note(style=g.r.choice(C.HOLDOUT_STYLES)) for _ in range(n // 2)]
    g.years = list(C.HOLDOUT_YEARS)
    classic += [g.note() for _ in range(n - n // 2)]
    return {"classic": classic, "author": HA.AuthorNoteGenerator(seed + 1).notes(n),
            "handwritten": HA.load_handwritten()}


def score(clf, recs: list[dict], batch: int = 256) -> dict:
    res = []
    for i in range(0, len(recs), batch):
        res += clf.classify([r["text"] for r in recs[i:i + batch]], explain=False)
    right = called_compliant = yv_n = yv_ok = 0
    cats: dict[str, list[int]] = {}
    errors = []
    for r, v in zip(recs, res):
        ok = v["verdict"] == r["verdict"]
        right += ok
        called_compliant += r["verdict"] != "compliant" and v["verdict"] == "compliant"
        for c in r.get("phenomena") or [r.get("style", "classic")]:
            x = cats.setdefault(c, [0, 0])
            x[0] += ok
            x[1] += 1
        facts = v.get("facts")                        # None: an older single-output bundle
        if facts and r.get("year_value") is not None and facts["year"]["state"] != R.NOT_STATED:
            yv_n += 1
            yv_ok += v["facts"]["year"]["value"] == r["year_value"]
        if not ok:
            errors.append({"text": r["text"], "verdict": r["verdict"], "states": r["states"],
                           "got": v["verdict"],
                           "got_states": {h: facts[h]["state"] for h in R.ATTRIBUTES} if facts else None})
    return {"n": len(recs), "accuracy": right / max(len(recs), 1),
            "not_compliant_called_compliant": called_compliant,
            "year_value_accuracy": yv_ok / yv_n if yv_n else None,
            "by_category": {k: {"n": c[1], "accuracy": round(c[0] / c[1], 4)} for k, c in sorted(cats.items())},
            "errors": errors}


def main(argv=None) -> int:
    from agent.bundle import DEFAULT_COMPLIANCE_BUNDLE, verify_bundle
    from agent.classify import ComplianceClassifier
    p = argparse.ArgumentParser(prog="python -m export.compliance.evaluate")
    p.add_argument("bundle", nargs="?", default=str(DEFAULT_COMPLIANCE_BUNDLE))
    p.add_argument("--notes", type=int, default=2000, help="notes per generated set")
    p.add_argument("--seed", type=int, default=424242)
    p.add_argument("--errors", default=None, help="write the misclassified notes here (JSON lines)")
    p.add_argument("--min-p-complies", type=float, nargs="+", default=None,
                   help="score with these bars instead of the bundle's (a sweep: one summary line each)")
    a = p.parse_args(argv)
    clf = ComplianceClassifier.from_bundle(verify_bundle(a.bundle))
    if a.min_p_complies:
        sets = heldout_sets(a.notes, a.seed)
        for mp in a.min_p_complies:
            clf.min_p_complies = mp
            res = {k: score(clf, v) for k, v in sets.items()}
            print(json.dumps({"min_p_complies": mp, **{k: {"accuracy": round(s["accuracy"], 4),
                              "not_compliant_called_compliant": s["not_compliant_called_compliant"]}
                              for k, s in res.items()}}))
        return 0
    out, errs = {}, []
    total = right = 0
    for name, recs in heldout_sets(a.notes, a.seed).items():
        s = score(clf, recs)
        errs += [{"set": name, **e} for e in s.pop("errors")]
        out[name] = s
        total += s["n"]
        right += round(s["accuracy"] * s["n"])
    out["all"] = {"n": total, "accuracy": right / max(total, 1),
                  "min_category": min((c["accuracy"], f"{k}:{n}") for k, s in out.items() if k != "all"
                                      for n, c in s["by_category"].items())}
    if a.errors:
        with open(a.errors, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in errs)
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
