"""Byte-identity check of `trey-agent classify` between two checkouts (issue 14 speed work).

    python -m bench.check_classify_same --other /work/main [--per-kind 800] [--seed 3]

Writes one notes file (classic corpus.NoteGenerator + field_notes.FieldNoteGenerator +
heldout_author.AuthorNoteGenerator notes, the hand-written set, long narrative notes of
100-330 words, a few JSON lines / odd inputs) and runs `python -m agent.cli classify FILE`
(with and without --no-why) once with this checkout's code and once with --other's
(PYTHONPATH decides which agent package is imported; both use their own shipped bundle,
so the two bundles must be the same). Also compares single-note calls in-process (one
note per classify call), where the int8 batch effect does not enter.
Exits 1 on any difference, printing the first differing line."""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_notes(per_kind: int, seed: int) -> list[str]:
    from export.compliance.corpus import NoteGenerator
    from export.compliance.field_notes import FILLER, FieldNoteGenerator
    from export.compliance.heldout_author import AuthorNoteGenerator, load_handwritten
    out = [n["text"] for n in NoteGenerator(seed).notes(per_kind)]
    out += [n["text"] for n in FieldNoteGenerator(seed).notes(per_kind)]
    out += [n["text"] for n in AuthorNoteGenerator(seed).notes(per_kind)]
    out += [n["text"] for n in load_handwritten()]
    r = random.Random(seed)
    for target in (60, 100, 200, 330):
        for _ in range(max(4, per_kind // 40)):
            story, k = [], 0
            while k < target - 8:
                s = r.choice(FILLER)
                story.append(s)
                k += len(s.split())
            out.append((". ".join(story) + ". Alternator steel, built 2011, good condition.")[-2000:])
    out = [" ".join(t.split("\n")) if "\n" in t or "\r" in t else t for t in out]
    lines = [json.dumps({"id": i, "text": t}) if i % 7 == 0 else t for i, t in enumerate(out)]
    lines += ["", "x" * 2001, '{"id": 1}', "plastic -> steel, built 1999, it's fine, isn't poor",
              "Ｂｕｉｌｔ １９８７ ｃａｓｔ ｉｒｏｎ", "nineteen ninety four alloy good", "'85 steel poor", "??? !!!"]
    return lines


def run_cli(code_root: str, path: str, extra: list[str]) -> bytes:
    env = dict(os.environ, PYTHONPATH=code_root, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "agent.cli", "classify", path, *extra], capture_output=True,
                       env=env, cwd=code_root)
    return r.stdout + f"\n[exit {r.returncode}]\n".encode()


SINGLE = r"""
import json, sys
from agent.bundle import DEFAULT_COMPLIANCE_BUNDLE, verify_bundle
from agent.classify import ComplianceClassifier
clf = ComplianceClassifier.from_bundle(verify_bundle(DEFAULT_COMPLIANCE_BUNDLE))
notes = [l for l in open(sys.argv[1], encoding="utf-8").read().split("\n") if l.strip()][:int(sys.argv[2])]
for ex in (True, False):
    for n in notes:
        sys.stdout.write(json.dumps(clf.classify([n], explain=ex)[0]) + "\n")
"""


def run_single(code_root: str, path: str, n: int) -> bytes:
    env = dict(os.environ, PYTHONPATH=code_root, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", SINGLE, path, str(n)], capture_output=True, env=env,
                          cwd=code_root, check=True).stdout


def first_diff(a: bytes, b: bytes) -> str:
    for i, (x, y) in enumerate(zip(a.split(b"\n"), b.split(b"\n")), 1):
        if x != y:
            return f"line {i}:\n  mine:  {x[:400]!r}\n  other: {y[:400]!r}"
    return "different number of lines"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="check_classify_same")
    ap.add_argument("--other", default="/work/main")
    ap.add_argument("--per-kind", type=int, default=800)
    ap.add_argument("--single", type=int, default=600, help="notes also compared one per call")
    ap.add_argument("--seed", type=int, default=3)
    a = ap.parse_args(argv)
    lines = make_notes(a.per_kind, a.seed)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    bad = 0
    try:
        for extra in ([], ["--no-why"]):
            mine, other = run_cli(str(ROOT), fh.name, extra), run_cli(a.other, fh.name, extra)
            n_out = mine.count(b"\n") - 2
            same = mine == other
            bad += not same
            print(f"classify {' '.join(extra) or '(why)'}: {len(lines)} input lines, {n_out} output lines, "
                  f"{'IDENTICAL' if same else 'DIFFERENT'} ({len(mine)} bytes)")
            if not same:
                print(first_diff(mine, other))
        mine, other = run_single(str(ROOT), fh.name, a.single), run_single(a.other, fh.name, a.single)
        same = mine == other
        bad += not same
        nres = mine.count(b"\n")
        print(f"one note per call (why + no why): {nres} results, {'IDENTICAL' if same else 'DIFFERENT'}")
        if not same:
            print(first_diff(mine, other))
    finally:
        os.unlink(fh.name)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
