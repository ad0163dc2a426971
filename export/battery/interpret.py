"""Interpretability of the exported model (the original "mimic explainer", reworked):
  * permutation importance per input feature: shuffle one feature's whole track across
    windows, measure how much the held-out sum30 MAE grows;
  * a small surrogate decision tree that mimics the model's 30-day outlook (forecast sum /
    28-day level) from a handful of readable window summaries; its fidelity (R^2 against
    the model, not the truth) says how far to trust it.
"""

from __future__ import annotations

import numpy as np

from agent.forecast_features import FEATURES

from .data import WindowSet
from .models import predict


def permutation_importance(model, ws: WindowSet, seed: int, repeats: int = 2) -> dict:
    rng = np.random.default_rng(seed)
    base = float(np.mean(np.abs(predict(model, ws.x, ws.level).sum(1) - ws.y.sum(1))))
    out = {}
    for f, name in enumerate(FEATURES):
        inc = []
        for _ in range(repeats):
            x = ws.x.copy()
            x[:, :, f] = x[rng.permutation(len(x)), :, f]
            inc.append(float(np.mean(np.abs(predict(model, x, ws.level).sum(1) - ws.y.sum(1)))) - base)
        out[name] = round(float(np.mean(inc)), 6)
    return {"metric": "increase of held-out sum30 MAE (cycles) when the feature is shuffled",
            "baseline_sum30_mae": round(base, 6),
            "importance": dict(sorted(out.items(), key=lambda kv: -kv[1]))}


SUMMARY = ("mean_cycles_rel_last7", "mean_cycles_rel_days8_28", "mean_cycles_rel_days29_56",
           "duration_rel_last7", "origin_dow_sin", "origin_dow_cos", "origin_doy_sin", "origin_doy_cos",
           "log_level_std")


def _summaries(ws: WindowSet) -> np.ndarray:
    x = ws.x
    return np.column_stack([x[:, -7:, 0].mean(1), x[:, -28:-7, 0].mean(1), x[:, :-28, 0].mean(1),
                            x[:, -7:, 1].mean(1), x[:, -1, 3], x[:, -1, 4], x[:, -1, 5], x[:, -1, 6],
                            x[:, -1, 8]])


def surrogate_tree(model, ws: WindowSet, seed: int, depth: int = 4) -> dict:
    from sklearn.tree import DecisionTreeRegressor, export_text
    target = predict(model, ws.x, ws.level).sum(1) / (30 * ws.level[:, 0])   # outlook vs recent level
    z = _summaries(ws)
    n = len(z)
    cut = int(0.7 * n)
    tree = DecisionTreeRegressor(max_depth=depth, min_samples_leaf=50, random_state=seed).fit(z[:cut], target[:cut])
    pred = tree.predict(z[cut:])
    resid = target[cut:] - pred
    r2 = 1.0 - float(np.var(resid)) / float(np.var(target[cut:]) or 1.0)
    imp = dict(sorted(zip(SUMMARY, map(float, tree.feature_importances_)), key=lambda kv: -kv[1]))
    return {"target": "model's 30-day mean / current 28-day level", "max_depth": depth,
            "fidelity_r2_holdout": round(r2, 4), "feature_importance": imp,
            "text": export_text(tree, feature_names=list(SUMMARY), decimals=3)}
