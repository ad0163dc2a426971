"""trey-export train compliance [--data DIR] [--seed S] [--out BUNDLE_DIR] ...

Without --data a corpus is generated from --seed/--notes. The shipped bundle is
`trey-export train compliance --seed 8 --threads 1 --out agent/models/compliance` (defaults). Styles
and years in export.compliance.corpus.HOLDOUT_* never reach training; the bundle's
eval_accuracy is measured on them."""

from __future__ import annotations

import json
import os


def configure(p) -> None:
    from agent.tokenizer import NORMALIZERS
    from export.compliance.train import TrainConfig as T
    p.add_argument("--data", default=None, help="notes.jsonl or a `data compliance` directory (default: generate)")
    p.add_argument("--notes", type=int, default=T.notes, help="notes to generate")
    p.add_argument("--heldout-notes", type=int, default=T.heldout_notes)
    p.add_argument("--no-holdout", action="store_true", help="train on every style and year")
    p.add_argument("--seed", type=int, default=T.seed)
    p.add_argument("--out", default=T.out, help="bundle output directory")
    p.add_argument("--artifacts", default=T.artifacts, help="curves, confusion matrix, fp32 model, errors")
    p.add_argument("--max-len", type=int, default=T.max_len, help="the first (shortest) padding bucket")
    p.add_argument("--field-frac", type=float, default=T.field_frac, help="share of field-style notes")
    p.add_argument("--word-dropout", type=float, default=T.word_dropout)
    p.add_argument("--year-grain", type=int, choices=(1, 5), default=T.year_grain,
                   help="year tokens: 5 = half-decade buckets (default), 1 = unit digits")
    p.add_argument("--fuzzy-match", choices=("delete1", "edit1"), default=T.fuzzy_match,
                   help="typos: only a vocabulary word one true edit away (edit1, default: the shipped "
                        "bundle's) or any sharing a one-letter delete (delete1, bundles before 2.3.0)")
    p.add_argument("--normalize", nargs="*", choices=NORMALIZERS, default=list(T.normalize),
                   help="tokenizer normalisations (agent/tokenizer.py; default: all)")
    p.add_argument("--emb", type=int, default=T.emb)
    p.add_argument("--units", type=int, default=T.units)
    p.add_argument("--pool", choices=("max", "attention"), default=T.pool,
                   help="what each fact head reads: the max over the steps (default) or attention")
    p.add_argument("--lr", type=float, default=T.lr)
    p.add_argument("--batch", type=int, default=T.batch)
    p.add_argument("--max-epochs", type=int, default=T.max_epochs)
    p.add_argument("--patience", type=int, default=T.patience)
    p.add_argument("--time-budget", type=float, default=T.time_budget_s, help="training budget, seconds")
    p.add_argument("--threads", type=int, default=T.threads, help="TF threads (the build machine is shared)")
    p.add_argument("--version", default=T.version)
    p.add_argument("--min-p-complies", type=float, default=T.min_p_complies,
                   help="a head's complies counts only at this probability (agent/regulation.read_fact)")
    p.add_argument("--mlflow-uri", default=os.environ.get("MLFLOW_TRACKING_URI"),
                   help="MLflow tracking URI (default: local sqlite store ./mlruns/mlflow.db)")
    p.add_argument("--no-mlflow", action="store_true")
    p.add_argument("--key", default=None, help="ed25519 signing key (default: DEVELOPMENT key)")
    p.add_argument("--progress", action="store_true", help="per-epoch log lines")


def main(args) -> int:
    from export.compliance.train import TrainConfig, run_training
    cfg = TrainConfig(out=args.out, artifacts=args.artifacts, data=args.data, notes=args.notes,
                      heldout_notes=args.heldout_notes, holdout=not args.no_holdout, seed=args.seed,
                      field_frac=args.field_frac, word_dropout=args.word_dropout,
                      max_len=args.max_len, year_grain=args.year_grain, fuzzy_match=args.fuzzy_match,
                      normalize=tuple(args.normalize), emb=args.emb, units=args.units, pool=args.pool, lr=args.lr, batch=args.batch,
                      max_epochs=args.max_epochs, patience=args.patience, time_budget_s=args.time_budget,
                      threads=args.threads, version=args.version, mlflow=not args.no_mlflow,
                      min_p_complies=args.min_p_complies,
                      mlflow_uri=args.mlflow_uri, key_path=args.key, progress=args.progress)
    s = run_training(cfg)
    m = s["metrics"]
    print(json.dumps({"bundle": s["bundle"], "best_epoch": s["best_epoch"], "epochs": len(s["history"]),
                      "vocab": s["vocab"], "timings": s["timings"], "bundle_bytes": s["bundle_bytes"],
                      "accuracy": {k: v["accuracy"] for k, v in m.items() if "accuracy" in v},
                      "not_compliant_called_compliant": {k: v["noncompliant_or_undetermined_called_compliant"]
                                                         for k, v in m.items()},
                      "parity": s["parity"]},
                     indent=1, default=float))
    return 0
