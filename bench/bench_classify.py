"""Compliance classifier speed and size.

    python -m bench.bench_classify [--bundle agent/models/compliance] [--artifacts artifacts/compliance]
                                   [--notes 5000] [--single 500] [--no-keras]
                                   [--ab-ref 8513cd2] [--ab-rounds 6] [--ab-only]

0. A/B against "today" (issue 14: at least as fast per note of today's length): the code
   AND bundle of git commit --ab-ref (default 8513cd2, the single-verdict model) against
   this checkout's, each in its own worker process (PYTHONPATH = a `git archive` of the
   old agent/ package, resp. this checkout), both with ONE ORT thread (intra_op 1,
   OMP_NUM_THREADS=1), on the same notes of the classic generator's length
   (export/compliance/corpus.NoteGenerator). Rounds are interleaved old/new/new/old/... so
   the machine's load (training jobs) hits both sides alike; per side: notes/s of one
   classify call over all --notes (median over rounds), with and without `why`, and
   p50/p99 latency of classify([one note]) (pooled over rounds), with and without `why`;
   then new/old for each (notes/s: > 1 = new faster; latency: < 1 = new faster). The load
   average is printed before and after. --ab-rounds 0 skips it; --ab-only stops after it.
1. The shipped bundle through the agent's ComplianceClassifier (int8, ORT, 1 thread):
   notes/s in batch (with and without the occlusion `why`), p50/p99 latency of ONE note,
   and `trey-agent classify` end to end (process start, bundle verification included), on
   notes of the classic generator's length (~10-20 words); then long notes (narrative +
   facts, ~100 / 200 / 330 words): ms per note and per 100 words, with and without `why`.
2. Keras vs ONNX fp32 vs ONNX int8 on the same model: batch throughput and single-row
   latency of the model alone on token ids, plus sizes. Uses the Keras model and fp32 ONNX
   the training run leaves in --artifacts (`trey-export train compliance` writes them);
   without them a small model is trained on the spot (~40 s).
Prints numbers; asserts nothing."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _lat(fn, n):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    ts = np.array(ts) * 1000
    return {"p50_ms": round(float(np.percentile(ts, 50)), 3), "p99_ms": round(float(np.percentile(ts, 99)), 3)}


def _rate(fn, n_items, repeat=3):
    best = 1e9
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return round(n_items / best, 1)


_AB_WORKER = r"""
import json, os, sys, time
import numpy as np
from agent.bundle import DEFAULT_COMPLIANCE_BUNDLE, verify_bundle
from agent.classify import ComplianceClassifier
import agent.classify as _C
clf = ComplianceClassifier.from_bundle(verify_bundle(DEFAULT_COMPLIANCE_BUNDLE), threads=1)
notes = json.load(open(sys.argv[1], encoding="utf-8"))
clf.classify(notes[:200]); clf.classify(notes[:200], explain=False)
for n in notes[:100]:
    clf.classify([n]); clf.classify([n], explain=False)
i = 0
print(json.dumps({"ready": _C.__file__}), flush=True)
for line in sys.stdin:
    task, n = line.split()
    n, explain = int(n), task.endswith("_why")
    if task.startswith("batch"):
        t = time.perf_counter()
        clf.classify(notes, explain=explain)
        print(json.dumps({"s": time.perf_counter() - t}), flush=True)
    else:
        ts = []
        for _ in range(n):
            note = [notes[i % len(notes)]]
            i += 1
            t = time.perf_counter()
            clf.classify(note, explain=explain)
            ts.append(time.perf_counter() - t)
        print(json.dumps({"ts": ts}), flush=True)
"""


def _ab(notes: list[str], ref: str, rounds: int, single: int) -> dict:
    """Interleaved A/B of classify speed: commit `ref`'s agent code + bundle vs this checkout's."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_ab_"))
    old_root = tmp / "old"
    old_root.mkdir()
    arch = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "agent"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old_root)], input=arch, check=True)
    nf = tmp / "notes.json"
    nf.write_text(json.dumps(notes), encoding="utf-8")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    workers = {}
    for side, root in (("old", old_root), ("new", ROOT)):
        p = subprocess.Popen([sys.executable, "-c", _AB_WORKER, str(nf)], cwd=str(root), text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=dict(env, PYTHONPATH=str(root)))
        workers[side] = p
    try:
        ready = {s: json.loads(p.stdout.readline())["ready"] for s, p in workers.items()}

        def ask(side, task, n):
            p = workers[side]
            p.stdin.write(f"{task} {n}\n")
            p.stdin.flush()
            return json.loads(p.stdout.readline())

        tasks = ("batch_why", "batch_nowhy", "single_why", "single_nowhy")
        got = {s: {t: [] for t in tasks} for s in workers}
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        for rnd in range(rounds):
            order = ("old", "new") if rnd % 2 == 0 else ("new", "old")
            for task in tasks:
                for side in order:
                    r = ask(side, task, single)
                    got[side][task] += [r["s"]] if "s" in r else r["ts"]
        load1 = os.getloadavg()
    finally:
        for p in workers.values():
            p.stdin.close()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    res = {"ref": ref, "notes": len(notes), "mean_words_per_note": round(float(np.mean([len(n.split()) for n in notes])), 1),
           "rounds": rounds, "single_calls_per_round": single, "code": ready,
           "loadavg_before": [round(x, 2) for x in load0], "loadavg_after": [round(x, 2) for x in load1],
           "seconds": round(time.perf_counter() - t0, 1)}
    for side in workers:
        g, r = got[side], {}
        for t in ("batch_why", "batch_nowhy"):
            r[f"{t}_notes_per_s"] = round(len(notes) / float(np.median(g[t])), 1)
        for t in ("single_why", "single_nowhy"):
            ms = np.asarray(g[t]) * 1000
            r[f"{t}_p50_ms"] = round(float(np.percentile(ms, 50)), 4)
            r[f"{t}_p99_ms"] = round(float(np.percentile(ms, 99)), 4)
        res[side] = r
    res["new_over_old"] = {k: round(res["new"][k] / res["old"][k], 3) for k in res["new"]}
    return res


def _long_notes(clf, n: int) -> dict:
    """Notes of ~100/200/330 words (2,000 characters at most): narrative around the facts."""
    from export.compliance.field_notes import FILLER
    import random
    r = random.Random(5)
    out = {}
    for target in (100, 200, 330):
        notes = []
        for _ in range(n):
            story, k = [], 0
            while k < target - 8:
                s = r.choice(FILLER)
                story.append(s)
                k += len(s.split())
            note = ". ".join(story) + ". Alternator steel, built 2011, good condition."
            notes.append(note[-2000:])
        words = float(np.mean([len(x.split()) for x in notes]))
        row = {"words": round(words, 1), "tokens_padded": len(clf.tokenizer.encode(notes[0]))}
        for label, explain in (("with_why", True), ("no_why", False)):
            rate = _rate(lambda: clf.classify(notes, explain=explain), len(notes), 2)
            ms = 1000 / rate
            row[f"ms_per_note_{label}"] = round(ms, 2)
            row[f"ms_per_100_words_{label}"] = round(ms * 100 / words, 2)
        out[f"~{target}_words"] = row
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="bench_classify")
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--artifacts", default=str(ROOT / "artifacts" / "compliance"))
    ap.add_argument("--notes", type=int, default=5000)
    ap.add_argument("--single", type=int, default=500)
    ap.add_argument("--no-keras", action="store_true")
    ap.add_argument("--ab-ref", default="8513cd2", help="git commit whose agent code + bundle is 'today'")
    ap.add_argument("--ab-rounds", type=int, default=6, help="interleaved A/B rounds (0: no A/B)")
    ap.add_argument("--ab-only", action="store_true", help="stop after the A/B (and the long-note figures)")
    args = ap.parse_known_args(argv)[0]      # `python -m bench classify` passes bench names

    from agent.bundle import DEFAULT_COMPLIANCE_BUNDLE, verify_bundle
    from agent.classify import ComplianceClassifier
    from export.compliance.corpus import NoteGenerator

    bpath = Path(args.bundle or DEFAULT_COMPLIANCE_BUNDLE)
    t = time.perf_counter()
    bundle = verify_bundle(bpath)
    clf = ComplianceClassifier.from_bundle(bundle)
    load_ms = (time.perf_counter() - t) * 1000
    notes = [n["text"] for n in NoteGenerator(99).notes(args.notes)]
    if args.ab_rounds > 0:
        print(json.dumps({"ab": _ab(notes, args.ab_ref, args.ab_rounds, max(1, args.single // 2))}, indent=1),
              flush=True)
    if args.ab_only:
        print(json.dumps({"long_notes": _long_notes(clf, max(20, args.notes // 50))}, indent=1))
        return
    res = {"bundle": str(bpath), "bundle_bytes": {f.name: f.stat().st_size for f in sorted(bpath.iterdir())},
           "load_verify_ms": round(load_ms, 1), "cpu_threads": 1}
    clf.classify(notes[:100])
    res["batch_notes_per_s_with_why"] = _rate(lambda: clf.classify(notes), len(notes), 2)
    res["batch_notes_per_s_no_why"] = _rate(lambda: clf.classify(notes, explain=False), len(notes))
    res["tokenize_notes_per_s"] = _rate(lambda: [clf.tokenizer.encode(x) for x in notes], len(notes))
    i = iter(range(10 ** 9))
    res["single_note_with_why"] = _lat(lambda: clf.classify([notes[next(i) % len(notes)]]), args.single)
    res["single_note_no_why"] = _lat(lambda: clf.classify([notes[next(i) % len(notes)]], explain=False), args.single)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(notes) + "\n")
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "agent.cli", "classify", fh.name], capture_output=True, cwd=ROOT)
    dt = time.perf_counter() - t
    os.unlink(fh.name)
    res["cli_classify"] = {"notes": len(notes), "seconds": round(dt, 2), "notes_per_s": round(len(notes) / dt, 1),
                           "exit": r.returncode}
    res["mean_words_per_note"] = round(float(np.mean([len(n.split()) for n in notes])), 1)
    res["long_notes"] = _long_notes(clf, max(20, args.notes // 50))
    print(json.dumps(res, indent=1))
    if args.no_keras:
        return

    # ---- Keras vs ONNX fp32 vs int8 on the same model -------------------------------
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from export.compliance import onnx_export as OX
    from export.compliance.train import TrainConfig, _tf, run_training
    art = Path(args.artifacts)
    tf = _tf(1)
    if (art / "model.keras").exists() and (art / "model_fp32.onnx").exists():
        keras_model = tf.keras.models.load_model(art / "model.keras")
        fp32, int8 = (art / "model_fp32.onnx").read_bytes(), bundle.model_bytes
        tok, source = clf.tokenizer, f"{art} + {bpath}"
    else:
        d = Path(tempfile.mkdtemp())
        s = run_training(TrainConfig(out=str(d / "b"), artifacts=str(d / "a"), notes=6000, max_epochs=4,
                                     threads=1, mlflow=False, heldout_notes=300))
        o = s["objects"]
        keras_model, fp32, int8, tok, source = o["keras_model"], o["fp32"], o["int8"], o["tokenizer"], "trained now (small)"
    rows = [tok.encode(n) for n in notes]                # classic notes, padded to the longest one's bucket
    width = max(map(len, rows))
    x = np.asarray([[0] * (width - len(r)) + r for r in rows], dtype=np.int32)
    s32, s8 = OX.session(fp32), OX.session(int8)
    one = x[:1]
    cmp = {"source": source, "rows": len(x), "row_length": int(x.shape[1])}
    for name, batch_fn, one_fn, size in (
            ("keras", lambda: keras_model.predict(x, batch_size=1024, verbose=0),
             lambda: keras_model(one, training=False), None),
            ("onnx_fp32", lambda: OX.predict_facts(s32, {0: x}), lambda: s32.run(None, {OX.INPUT: one}), len(fp32)),
            ("onnx_int8", lambda: OX.predict_facts(s8, {0: x}), lambda: s8.run(None, {OX.INPUT: one}), len(int8))):
        batch_fn()
        cmp[name] = {"batch_rows_per_s": _rate(batch_fn, len(x)), "single_row": _lat(one_fn, args.single),
                     "bytes": size}
    if (art / "model.keras").exists():
        cmp["keras"]["bytes"] = (art / "model.keras").stat().st_size
    pk = keras_model.predict(x, batch_size=1024, verbose=0)
    p8 = OX.predict_facts(s8, {0: x})[0]
    from agent import regulation as R
    vk = [R.verdict({h: R.STATES[int(np.argmax(pk[h][i]))] for h in R.ATTRIBUTES}) for i in range(len(x))]
    v8 = [R.verdict({h: R.STATES[int(np.argmax(p8[h][i]))] for h in R.ATTRIBUTES}) for i in range(len(x))]
    cmp["int8_vs_keras_verdict_agreement"] = float(np.mean([a == b for a, b in zip(vk, v8)]))
    print(json.dumps(cmp, indent=1))


if __name__ == "__main__":
    main()
