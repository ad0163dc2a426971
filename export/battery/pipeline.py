"""`trey-export train battery` end to end:

data (generated from --seed, or --data: a CSV / a directory of CSVs / a lake, whose
sampled windows are built by a Spark job) -> agent cleaning -> split by battery (train /
validation / held-out test) -> windows (export/battery/data.py, sampled to --max-windows)
-> model search (FLAML, rolling-origin CV by battery, NRMSE, budget, exit score)
-> final fits (the global LSTM always, for the report; the search winner is exported)
-> held-out evaluation vs naive, seasonal naive, ridge and the oracle
-> ONNX fp32 + dynamic int8 + parity -> signed bundle -> interpretability
-> MLflow run (params, per-epoch losses, metrics, leaderboard, PNGs, bundle).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from agent.forecast_features import FEATURES, HORIZON

from . import evaluate
from .data import training_data, training_source
from .fleet import FLEET_SIZE, generate_fleet
from .interpret import permutation_importance, surrogate_tree
from .models import LinearForecaster, fit_ridge, predict
from .onnx_export import INPUTS, OUTPUT, export_fp32, parity, quantize_int8, run, session
from .search import run_search
from .train import seed_everything, train_lstm

log = logging.getLogger(__name__)
MODEL_NAME = "battery-forecaster"


@dataclass
class TrainConfig:
    out: str                                  # bundle directory
    data: str | None = None                   # None = generate a fleet from seed
    master: str | None = None                 # Spark master when data is a lake
    max_batteries: int | None = None          # sample of a lake's batteries
    batteries: int = FLEET_SIZE
    seed: int = 7
    artifacts: str = "artifacts/battery"
    window: int = 364
    train_stride: int = 10
    lstm_input: str = "weekly"                 # the LSTM reads 52 weekly steps (see models.py)
    eval_stride: int = 3
    max_per_battery: int | None = None
    max_windows: int | None = 400_000          # all roles together: W x 9 x 4 bytes each in memory
    hidden: int | None = None                 # None = the search's best LSTM config
    lr: float | None = None
    max_epochs: int = 25
    patience: int = 4
    lstm_budget_s: float = 1500               # a cap; max_epochs/patience normally end training
    sum_weight: float = 1.0
    search_budget_s: float = 150
    search_lstm_epochs: int = 2
    exit_score: float = 0.0
    threads: int = 2
    mlflow_uri: str | None = None             # None = ./mlruns (file store)
    mlflow: bool = True
    key_path: str | None = None
    progress: bool = True
    timings: dict = field(default_factory=dict)


def _as_linear(kind: str, n_features: int, horizon: int) -> LinearForecaster:
    """Naive and seasonal naive as graphs of the same shape (in case a baseline wins)."""
    m = LinearForecaster(n_features, 7 if kind == "seasonal_naive" else 1, horizon)
    with torch.no_grad():
        m.linear.weight.zero_()
        m.linear.bias.zero_()
        if kind == "seasonal_naive":      # ratio_k = cycles_rel[-7 + k % 7]
            m.linear.bias.fill_(-1.0)
            for k in range(horizon):
                m.linear.weight[k, (k % 7) * n_features + 0] = 1.0
    return m


def run_training(cfg: TrainConfig) -> dict:
    t_start = time.monotonic()
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    art = Path(cfg.artifacts)
    art.mkdir(parents=True, exist_ok=True)
    tm = cfg.timings

    # -- data ------------------------------------------------------------------------
    t = time.monotonic()
    data_path = cfg.data
    if data_path is None:
        data_path = str(art / "fleet")
        generate_fleet(cfg.batteries, cfg.seed, data_path)
    source = training_source(data_path, cfg.master, cfg.max_batteries, cfg.seed)
    try:
        td = training_data(source, cfg.window, cfg.seed, cfg.train_stride, cfg.eval_stride, cfg.max_per_battery,
                           cfg.max_windows)
    finally:
        source.close()
    clean_stats, params = source.cleaning, td.params
    train_ids, val_ids, test_ids = td.split["train"], td.split["validation"], td.split["test"]
    train_ws, val_ws, test_ws = td.train, td.validation, td.test
    tm["data_s"] = round(time.monotonic() - t, 1)
    log.info("windows: train %d, val %d, test %d", len(train_ws), len(val_ws), len(test_ws))

    # -- search ------------------------------------------------------------------------
    t = time.monotonic()
    search = run_search(train_ws, val_ws, cfg.search_budget_s, cfg.exit_score, cfg.seed,
                        cfg.search_lstm_epochs, lstm_trial_budget_s=max(2.0, cfg.search_budget_s / 3),
                        lstm_input=cfg.lstm_input)
    tm["search_s"] = round(time.monotonic() - t, 1)
    board = search["leaderboard"]
    best_lstm = next((e["config"] for e in board if e["model"] == "lstm"), {"hidden": 64, "lr": 3e-3})
    best_ridge = next((e["config"] for e in board if e["model"] == "ridge"), {"alpha": 10.0, "n_lags": 28})

    # -- final fits ----------------------------------------------------------------------
    t = time.monotonic()
    epochs_log: list[dict] = []
    lstm, history = train_lstm(train_ws, val_ws, hidden=cfg.hidden or best_lstm["hidden"],
                               lr=cfg.lr or best_lstm["lr"], max_epochs=cfg.max_epochs, patience=cfg.patience,
                               seed=cfg.seed, time_budget_s=cfg.lstm_budget_s, sum_weight=cfg.sum_weight,
                               lstm_input=cfg.lstm_input,
                               progress=cfg.progress,
                               on_epoch=epochs_log.append)
    tm["lstm_s"] = round(time.monotonic() - t, 1)
    ridge = fit_ridge(train_ws.x, train_ws.level, train_ws.y, best_ridge["n_lags"], best_ridge["alpha"])
    nf = len(FEATURES)
    # The search ranks configurations under a budget (its LSTM trials get 2 epochs on a
    # subsample, so they cannot show what a fully trained LSTM does). The finalists -- the
    # fully trained LSTM, the best ridge refit on all training windows, and the search's
    # winner if it is a baseline -- are then compared on the validation batteries by the
    # MAE of the 30-day sum, the only quantity the failure rule reads (daily NRMSE, the
    # search's metric, also rewards getting each day's weekday wiggle right, which the alert
    # never sees); the best one is exported. The test batteries stay unseen.
    finalists = {"lstm": lstm, "ridge": ridge}
    if search["best"]["config"]["kind"] not in finalists:
        finalists[search["best"]["config"]["kind"]] = _as_linear(search["best"]["config"]["kind"], nf, HORIZON)
    val_preds = {k: predict(m, val_ws.x, val_ws.level) for k, m in finalists.items()}
    selection = {k: {m: evaluate.metrics(val_ws, p)[m] for m in ("sum30_mae", "nrmse")} for k, p in val_preds.items()}
    winner_kind = min(selection, key=lambda k: selection[k]["sum30_mae"])
    winner = finalists[winner_kind]
    log.info("final selection on validation (30-day-sum MAE): %s -> %s", selection, winner_kind)

    # -- held-out evaluation -------------------------------------------------------------
    preds = {"lstm": predict(lstm, test_ws.x, test_ws.level),
             "lstm_linear_part_only": lstm.highway_only(test_ws.x, test_ws.level),
             "ridge_lags": predict(ridge, test_ws.x, test_ws.level)}
    preds_winner = preds["lstm"] if winner_kind == "lstm" else (
        preds["ridge_lags"] if winner_kind == "ridge" else predict(winner, test_ws.x, test_ws.level))

    # -- export ----------------------------------------------------------------------------
    t = time.monotonic()

    def export_checked(kind):
        """ONNX fp32 + int8 of a finalist and their parity against its torch predictions."""
        fp32 = export_fp32(finalists[kind], cfg.window, nf)
        int8 = quantize_int8(fp32)
        par = parity(val_preds[kind], run(session(fp32), val_ws.x, val_ws.level),
                     run(session(int8), val_ws.x, val_ws.level), val_ws.lifetime, val_ws.rated)
        return fp32, int8, par

    fp32, int8, par = export_checked(winner_kind)
    # the LSTM's export path is checked on every run, also when another finalist ships
    par_lstm = par if winner_kind == "lstm" else export_checked("lstm")[2]
    int8_test = run(session(int8), test_ws.x, test_ws.level)
    report = evaluate.report(test_ws, {**preds, "exported_int8": int8_test})
    tm["export_s"] = round(time.monotonic() - t, 1)

    # -- interpretability -------------------------------------------------------------------
    t = time.monotonic()
    sub = test_ws.subset(np.random.default_rng(cfg.seed).permutation(len(test_ws))[:6000])
    importance = permutation_importance(winner, sub, cfg.seed)
    tree = surrogate_tree(winner, sub, cfg.seed)
    (art / "feature_importance.json").write_text(json.dumps(importance, indent=1))
    (art / "surrogate_tree.txt").write_text(tree["text"])
    (art / "surrogate_tree.json").write_text(json.dumps({k: v for k, v in tree.items() if k != "text"}, indent=1))
    tm["interpret_s"] = round(time.monotonic() - t, 1)

    # -- bundle ------------------------------------------------------------------------------
    from export.bundle import build_bundle
    created = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    norm = td.fleet_norm
    manifest = {
        "name": MODEL_NAME,
        "version": f"{created:%Y%m%d%H%M%S}-seed{cfg.seed}-{winner_kind}",
        "created": created.isoformat(),
        "model_kind": winner_kind,
        "model_config": getattr(winner, "config", {"kind": winner_kind}),
        "inputs": [{"name": INPUTS[0], "shape": ["batch", cfg.window, nf], "dtype": "float32"},
                   {"name": INPUTS[1], "shape": ["batch", 1], "dtype": "float32",
                    "meaning": "mean daily cycles of the last level_days days + eps"}],
        "outputs": [{"name": OUTPUT, "shape": ["batch", HORIZON], "dtype": "float32",
                     "meaning": "daily cycles for the next 30 days"}],
        "preprocessing": params,
        "quantization": "onnxruntime quantize_dynamic, int8 weights (QInt8)",
        "rule": "alert if lifetime_cycles + sum(forecast 30 days) >= rated_cycles",
        "fallback": {"window_days": cfg.window,
                     "28_to_window_days": "window completed with copies of the first whole weeks (padded_history)",
                     "7_to_27_days": "mean of available days (short_history_mean)",
                     "under_7_days": "fleet median daily cycles (fleet_median)"},
        "fleet_norm": norm,
        "training": {"seed": cfg.seed, "data": "generated" if cfg.data is None else "given",
                     "batteries": {"train": len(train_ids), "validation": len(val_ids), "test": len(test_ids)},
                     "windows": {"train": len(train_ws), "validation": len(val_ws), "test": len(test_ws)},
                     "window_sampling": {"planned": td.sampling["planned"], "max_windows": cfg.max_windows},
                     "cleaning": clean_stats, "epochs": len(history),
                     "best_val_loss": min(h["val_loss"] for h in history)},
        "metrics_heldout": {k: {m: (round(v, 6) if isinstance(v, float) else v) for m, v in d.items()}
                            for k, d in report.items()},
        "leaderboard": [{k: e[k] for k in ("rank", "model", "config", "cv_nrmse")} for e in board[:12]],
        "selection": {"metric": "sum30_mae on validation batteries", "scores": selection, "winner": winner_kind},
        "parity": par,
        **({} if winner_kind == "lstm" else {"parity_lstm": par_lstm}),
    }
    build_bundle(cfg.out, int8, manifest, key_path=cfg.key_path)
    (art / "model_fp32.onnx").write_bytes(fp32)
    (art / "model_int8.onnx").write_bytes(int8)
    torch.save({"config": getattr(winner, "config", {}), "state_dict": winner.state_dict()}, art / "model.pt")
    (art / "params.json").write_text(json.dumps(params, indent=1))
    summary = {"bundle": str(cfg.out), "winner": winner_kind, "selection": selection, "metrics_heldout": report,
               "parity": par, "parity_lstm": par_lstm,
               "leaderboard": board, "search_stopped": search["stopped"], "folds": search["folds"],
               "epochs": history, "importance": importance,
               "surrogate": {k: v for k, v in tree.items() if k != "text"}, "timings": tm}
    tm["total_s"] = round(time.monotonic() - t_start, 1)
    (art / "report.json").write_text(json.dumps(summary, indent=1, default=float))
    _plots(art, history, test_ws, preds_winner, report)
    if cfg.mlflow:
        _mlflow(cfg, art, summary, manifest)
    return summary


def _plots(art: Path, history, ws, pred, report) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([h["epoch"] for h in history], [np.nan if h["train_loss"] is None else h["train_loss"] for h in history],
            label="train")
    ax.plot([h["epoch"] for h in history], [h["val_loss"] for h in history], label="validation (batteries)")
    ax.set_xlabel("epoch"), ax.set_ylabel("MSE / var(y)"), ax.legend(), ax.set_title("LSTM loss")
    fig.tight_layout()
    fig.savefig(art / "loss_curve.png", dpi=90)
    plt.close(fig)
    fig, axes = plt.subplots(2, 2, figsize=(10, 6))
    bats = np.unique(ws.battery)[:4]
    for ax, b in zip(axes.flat, bats):
        idx = np.flatnonzero(ws.battery == b)
        i = idx[len(idx) // 2]
        ax.plot(range(1, 31), ws.y[i], label="truth", lw=1)
        if ws.expected is not None:
            ax.plot(range(1, 31), ws.expected[i], label="expected (oracle)", lw=1)
        ax.plot(range(1, 31), pred[i], label="exported model", lw=2)
        ax.axhline(float(ws.level[i, 0]), ls="--", c="grey", label="naive 28-day mean")
        ax.set_title(f"battery {ws.ids[b]}  origin {dt.date.fromordinal(int(ws.ordinal[i]))}", fontsize=9)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(art / "forecast_vs_truth.png", dpi=90)
    plt.close(fig)


def _mlflow(cfg: TrainConfig, art: Path, summary: dict, manifest: dict) -> None:
    import mlflow

    from export.tracking import use_experiment
    use_experiment(cfg.mlflow_uri, "trey-battery")
    with mlflow.start_run(run_name=manifest["version"]) as run:
        mlflow.log_params({"seed": cfg.seed, "batteries": cfg.batteries, "window": cfg.window,
                           "winner": summary["winner"], "max_epochs": cfg.max_epochs,
                           "search_budget_s": cfg.search_budget_s, "exit_score": cfg.exit_score,
                           "model_config": json.dumps(manifest["model_config"])})
        for h in summary["epochs"]:
            mlflow.log_metrics({k: h[k] for k in ("train_loss", "val_loss") if h[k] is not None}, step=h["epoch"])
        for model, m in summary["metrics_heldout"].items():
            mlflow.log_metrics({f"{model}.{k}": v for k, v in m.items() if isinstance(v, (int, float)) and v is not None})
        for k, v in summary["parity"].items():
            mlflow.log_metric(f"parity.{k}", v)
        for k, v in summary["parity_lstm"].items():
            mlflow.log_metric(f"parity_lstm.{k}", v)
        mlflow.log_dict({"leaderboard": summary["leaderboard"]}, "leaderboard.json")
        for f in ("loss_curve.png", "forecast_vs_truth.png", "feature_importance.json", "surrogate_tree.txt",
                  "surrogate_tree.json", "report.json"):
            if (art / f).exists():
                mlflow.log_artifact(str(art / f))
        mlflow.log_artifacts(cfg.out, artifact_path="bundle")
    from export.registry import register_bundle
    summary["registered"] = f"trey-battery/{register_bundle(cfg.out, 'battery', run.info.run_id)}"
