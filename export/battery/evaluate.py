"""Baselines and metrics on a WindowSet (held-out batteries).

NRMSE = RMSE of all daily forecasts / (max - min) of the true daily cycles of the set
(AutoML's "normalized_root_mean_squared_error": normalised by the target's range).
sum30_mae = mean |sum of the 30 forecast days - true sum|: the quantity the failure rule uses.
Alert = lifetime at the origin (as the agent knows it, after cleaning) + 30-day forecast
>= rated, scored against the truth (true lifetime + true next 30 days >= rated).
"""

from __future__ import annotations

import numpy as np

from agent.forecast_features import EPS

from .data import WindowSet


def naive(ws: WindowSet) -> np.ndarray:
    """Mean of the last 28 days, flat."""
    return np.repeat(ws.level - EPS, ws.y.shape[1], axis=1)


def seasonal_naive(ws: WindowSet) -> np.ndarray:
    """The last week repeated (day t+k takes the value of the same weekday last week)."""
    last7 = ws.x[:, -7:, 0] * ws.level            # cycles_rel * level = cycles
    k = np.arange(ws.y.shape[1]) % 7
    return last7[:, k]


def oracle(ws: WindowSet) -> np.ndarray | None:
    return ws.expected


def true_alerts(ws: WindowSet) -> np.ndarray:
    if ws.true_alert is not None:
        return ws.true_alert
    return ws.lifetime + ws.y.sum(1) >= ws.rated


def metrics(ws: WindowSet, pred: np.ndarray, value_range: float | None = None) -> dict:
    y = ws.y
    rng = value_range if value_range is not None else float(y.max() - y.min()) or 1.0
    err = pred - y
    sum_err = pred.sum(1) - y.sum(1)
    a_pred = ws.lifetime + pred.sum(1) >= ws.rated
    a_true = true_alerts(ws)
    tp = int(np.sum(a_pred & a_true))
    fp = int(np.sum(a_pred & ~a_true))
    fn = int(np.sum(~a_pred & a_true))
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"nrmse": float(np.sqrt(np.mean(err ** 2)) / rng), "rmse": float(np.sqrt(np.mean(err ** 2))),
            "mae_daily": float(np.mean(np.abs(err))), "sum30_mae": float(np.mean(np.abs(sum_err))),
            "sum30_bias": float(np.mean(sum_err)),
            "alert_precision": prec, "alert_recall": rec, "alert_f1": f1,
            "alert_tp": tp, "alert_fp": fp, "alert_fn": fn}


def nrmse(ws: WindowSet, pred: np.ndarray) -> float:
    return metrics(ws, pred)["nrmse"]


def report(ws: WindowSet, preds: dict[str, np.ndarray]) -> dict:
    """Metrics of every model + baselines (+ oracle when the truth has it) on the same
    windows, and for each model the share of the naive->oracle sum30 MAE gap it closes."""
    preds = {"naive_28d_mean": naive(ws), "seasonal_naive_weekly": seasonal_naive(ws), **preds}
    if ws.expected is not None:
        preds["oracle"] = ws.expected
    rng = float(ws.y.max() - ws.y.min()) or 1.0
    out = {name: metrics(ws, p, rng) for name, p in preds.items()}
    if "oracle" in out:
        gap = out["naive_28d_mean"]["sum30_mae"] - out["oracle"]["sum30_mae"]
        for m in out.values():
            m["gap_closed"] = float((out["naive_28d_mean"]["sum30_mae"] - m["sum30_mae"]) / gap) if gap > 0 else None
    return out
