"""trey-export train battery [--data PATH] [--seed S] [--out BUNDLE_DIR] ...

Without --data a fleet is generated from --seed/--batteries (the shipped bundle is
`trey-export train battery --seed 7 --out agent/models/battery`). --data takes the raw CSV,
a generator output directory (its truth file then enables the oracle), a directory of CSVs
(the old ingest layout), or a lake root (`trey-export ingest --lake` + `lake compact`), read
by a Spark job (--master) that samples at most --max-batteries batteries, cleans them and
builds their sampled windows in Spark; all go through the agent's cleaning. At most
--max-windows windows (train + validation + test) reach the trainer, from any source."""

from __future__ import annotations

import json
import os


def configure(p) -> None:
    p.add_argument("--data", default=None,
                   help="raw history CSV, directory of CSVs, or a lake root (read by Spark) (default: generate)")
    from export.lake.spark import add_master_arg
    add_master_arg(p)
    p.add_argument("--max-batteries", type=int, default=20000,
                   help="lake: train on a seeded sample of at most this many batteries (default 20000)")
    from export.battery.fleet import FLEET_SIZE
    p.add_argument("--batteries", type=int, default=FLEET_SIZE, help=f"fleet size when generating (default {FLEET_SIZE})")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", default="agent/models/battery", help="bundle output directory")
    p.add_argument("--artifacts", default="artifacts/battery", help="plots, reports, fp32 model, ...")
    p.add_argument("--window", type=int, default=364, help="days of history the model reads")
    p.add_argument("--max-epochs", type=int, default=25)
    p.add_argument("--lstm-budget", type=float, default=1500,
                   help="cap on the LSTM's final training, seconds (epochs/patience normally end it first)")
    p.add_argument("--sum-weight", type=float, default=1.0, help="weight of the 30-day-sum term in the LSTM loss")
    p.add_argument("--search-budget", type=float, default=150, help="model search budget, seconds")
    p.add_argument("--exit-score", type=float, default=0.0, help="stop the search at this CV NRMSE")
    p.add_argument("--hidden", type=int, default=None, help="LSTM hidden size (default: search's best)")
    p.add_argument("--lstm-input", choices=("weekly", "daily"), default="weekly",
                   help="LSTM steps: 52 weekly means of the window, or the last 56 days")
    p.add_argument("--train-stride", type=int, default=10, help="days between training window origins")
    p.add_argument("--max-per-battery", type=int, default=None, help="cap on training windows per battery")
    p.add_argument("--max-windows", type=int, default=400_000,
                   help="cap on all windows the trainer holds, a seeded sample (default 400000; each window is "
                        "WINDOW x 9 float32: 13 KB at --window 364)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (the build machine is shared)")
    p.add_argument("--mlflow-uri", default=os.environ.get("MLFLOW_TRACKING_URI"),
                   help="MLflow tracking URI (default: local sqlite store ./mlruns/mlflow.db, artifacts in ./mlruns/artifacts)")
    p.add_argument("--no-mlflow", action="store_true")
    p.add_argument("--key", default=None, help="ed25519 signing key (default: DEVELOPMENT key)")
    p.add_argument("--no-progress", action="store_true")


def main(args) -> int:
    from export.battery.pipeline import TrainConfig, run_training
    cfg = TrainConfig(out=args.out, data=args.data, master=args.master, max_batteries=args.max_batteries, batteries=args.batteries, seed=args.seed,
                      artifacts=args.artifacts, window=args.window, max_epochs=args.max_epochs,
                      lstm_budget_s=args.lstm_budget, sum_weight=args.sum_weight,
                      lstm_input=args.lstm_input, search_budget_s=args.search_budget,
                      exit_score=args.exit_score, hidden=args.hidden, train_stride=args.train_stride,
                      max_per_battery=args.max_per_battery, max_windows=args.max_windows, threads=args.threads,
                      mlflow_uri=args.mlflow_uri, mlflow=not args.no_mlflow, key_path=args.key,
                      progress=not args.no_progress)
    s = run_training(cfg)
    keep = ("naive_28d_mean", "seasonal_naive_weekly", "ridge_lags", "lstm_linear_part_only", "lstm",
            "exported_int8", "oracle")
    print(json.dumps({"bundle": s["bundle"], "winner": s["winner"], "selection": s["selection"], "timings": s["timings"],
                      "parity": s["parity"],
                      "heldout": {k: {m: s["metrics_heldout"][k].get(m) for m in
                                      ("nrmse", "sum30_mae", "gap_closed", "alert_precision", "alert_recall", "alert_f1")}
                                  for k in keep if k in s["metrics_heldout"]},
                      "leaderboard": [(e["model"], round(e["cv_nrmse"], 5)) for e in s["leaderboard"][:8]]},
                     indent=1, default=float))
    return 0
