"""Model search in the spirit of the original automated ML: FLAML's tuner over model
families and their hyperparameters, scored by rolling-origin cross-validation *by battery*,
primary metric NRMSE, with a time budget and an exit score; the leaderboard is returned.

Families: naive (28-day mean) and seasonal naive (weekly) as fixed entries, ridge on lag
features (alpha, lags), and the global LSTM (hidden size, learning rate; short training
per trial under a per-trial budget). Every family is a torch graph with the same inputs
(see models.py), so whichever wins exports through the same ONNX path. Tree ensembles
(FLAML's default learners) are left out on purpose: one model per horizon day, no scale-free
formulation across light and heavy users, and an export path (onnxmltools) the car's
graph contract does not need.

Rolling origin: cutoffs at fixed quantiles of the origin dates. Fold k fits on the
*training* batteries' windows whose 30 target days end before cutoff k, and scores the
*validation* batteries' windows with origins in the following `fold_days` after it.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from . import evaluate
from .data import WindowSet
from .models import fit_ridge, predict
from .train import train_lstm

log = logging.getLogger(__name__)


def folds(train: WindowSet, val: WindowSet, n_folds: int = 3, fold_days: int = 240):
    qs = np.linspace(0.45, 0.8, n_folds)
    cut = np.quantile(np.concatenate([train.ordinal, val.ordinal]), qs).astype(int)
    out = []
    for c in cut:
        fit = np.flatnonzero(train.ordinal + train.y.shape[1] <= c)
        score = np.flatnonzero((val.ordinal > c) & (val.ordinal <= c + fold_days))
        if len(fit) > 100 and len(score) > 20:
            out.append((int(c), fit, score))
    return out


def _cv(cv, train: WindowSet, val: WindowSet, fit_predict) -> float:
    """Mean NRMSE over folds; folds hold indices so only one fold's copy of the windows
    exists at a time (memory on a shared build machine)."""
    scores = []
    for _, fit_idx, score_idx in cv:
        score = val.subset(score_idx)
        scores.append(evaluate.nrmse(score, fit_predict(train.subset(fit_idx), score)))
    return float(np.mean(scores))


def run_search(train: WindowSet, val: WindowSet, time_budget_s: float = 240, exit_score: float = 0.0,
               seed: int = 0, lstm_epochs: int = 4, lstm_trial_budget_s: float = 60, n_folds: int = 3,
               lstm_max_windows: int = 40000, lstm_input: str = "daily") -> dict:
    """-> {"leaderboard": [...sorted by cv_nrmse], "best": entry, "stopped": reason}."""
    from flaml import tune
    cv = folds(train, val, n_folds)
    if not cv:
        raise ValueError("not enough history for rolling-origin folds")
    board = [
        {"model": "naive_28d_mean", "config": {"kind": "naive"}, "cv_nrmse": _cv(cv, train, val, lambda f, s: evaluate.naive(s))},
        {"model": "seasonal_naive_weekly", "config": {"kind": "seasonal_naive"},
         "cv_nrmse": _cv(cv, train, val, lambda f, s: evaluate.seasonal_naive(s))},
    ]
    best = min(e["cv_nrmse"] for e in board)
    state = {"best": best, "stop": best <= exit_score}
    t0 = time.monotonic()

    def evaluate_config(config):
        if state["stop"]:
            return None      # FLAML ends the search when a trial returns None (exit score reached)
        m = config["model"]
        started = time.monotonic()
        if m["kind"] == "ridge":
            cfg = {"kind": "ridge", "alpha": float(m["alpha"]), "n_lags": int(m["n_lags"])}
            score = _cv(cv, train, val, lambda f, s: predict(fit_ridge(f.x, f.level, f.y, cfg["n_lags"], cfg["alpha"]),
                                                  s.x, s.level))
        else:
            cfg = {"kind": "lstm", "hidden": int(m["hidden"]), "lr": float(m["lr"]), "epochs": lstm_epochs}

            def fp(f, s):
                if len(f) > lstm_max_windows:    # a trial ranks configs; the final fit sees everything
                    f = f.subset(np.sort(np.random.default_rng(seed).choice(len(f), lstm_max_windows, replace=False)))
                model, _ = train_lstm(f, s, hidden=cfg["hidden"], lr=cfg["lr"], max_epochs=lstm_epochs,
                                      patience=2, seed=seed, time_budget_s=lstm_trial_budget_s / len(cv),
                                      lstm_input=lstm_input,
                                      progress=False)
                return predict(model, s.x, s.level)
            score = _cv(cv, train, val, fp)
        board.append({"model": cfg["kind"], "config": cfg, "cv_nrmse": score,
                      "seconds": round(time.monotonic() - started, 1)})
        log.info("search: %s cv_nrmse %.5f", cfg, score)
        state["best"] = min(state["best"], score)
        if state["best"] <= exit_score:
            state["stop"] = True
        return {"cv_nrmse": score}

    space = {"model": tune.choice([
        {"kind": "ridge", "alpha": tune.loguniform(0.1, 1000.0), "n_lags": tune.choice([n for n in (7, 14, 28, 56, 112) if n <= train.x.shape[1]])},
        {"kind": "lstm", "hidden": tune.choice([32, 64, 96]), "lr": tune.loguniform(3e-4, 3e-3)},
    ])}
    starts = [{"model": {"kind": "ridge", "alpha": 10.0, "n_lags": 28}},
              {"model": {"kind": "lstm", "hidden": 64, "lr": 1e-3}}]
    remaining = max(1.0, time_budget_s - (time.monotonic() - t0))
    tune.run(evaluate_config, config=space, metric="cv_nrmse", mode="min", time_budget_s=remaining,
             num_samples=-1, points_to_evaluate=starts, verbose=0)
    board.sort(key=lambda e: e["cv_nrmse"])
    for rank, e in enumerate(board, 1):
        e["rank"] = rank
    stopped = "exit_score" if state["stop"] else "time_budget"
    return {"leaderboard": board, "best": board[0], "stopped": stopped, "exit_score": exit_score,
            "time_budget_s": time_budget_s, "folds": [{"cutoff_ordinal": c, "fit_windows": int(len(f)),
                                                        "score_windows": int(len(s))} for c, f, s in cv]}
