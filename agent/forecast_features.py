"""Model inputs from a clean daily series — the ONE implementation used by training
(`export/battery`) and by the agent (`agent/forecast.py`), numpy only.

A forecast is made at the end of day t ("origin") from the W days t-W+1..t. Per day the
window carries (FEATURES, in this order; the manifest records the order and W):
  cycles_rel     Daily_Cycles_Used / level             usage shape, scale-free
  duration_rel   Daily_Trip_Duration / window mean     driving behind the usage
  trips_rel      Number_Of_Trips / window mean
  dow_sin/cos    day of week                          weekday/weekend pattern
  doy_sin/cos    day of year                          yearly seasonality (cold, holidays)
  interpolated   1 if the day was filled in by cleaning (less trustworthy)
  log_level      standardised log(level)               how heavy a user this battery is
where level = mean cycles of the last LEVEL_DAYS days of the window (+eps). The model
predicts the next H days as multiples of `level`; the exported graph takes `level` as a
second input and returns cycles directly. One global model thus serves light and heavy
users alike. Battery age is deliberately not a feature: usage is a property of the
driver, and age correlates with calendar time across a fleet, inviting spurious fits.
W defaults to 364 days so the model sees the same season last year (each battery has its
own winter load and holiday dip). A battery with fewer than W but at least
MIN_DAYS_FOR_PADDING days gets a padded window (`pad_history`) in training and serving alike.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

FEATURES = ("cycles_rel", "duration_rel", "trips_rel", "dow_sin", "dow_cos",
            "doy_sin", "doy_cos", "interpolated", "log_level")
HORIZON = 30
LEVEL_DAYS = 28
EPS = 1e-3
MIN_DAYS_FOR_PADDING = 28      # shorter histories are not given to the model


def default_params(window: int = 56) -> dict:
    """Preprocessing parameters; training fills log_level mean/std from the training fleet."""
    return {"window": int(window), "horizon": HORIZON, "level_days": LEVEL_DAYS, "eps": EPS,
            "features": list(FEATURES), "log_level_mean": 0.0, "log_level_std": 1.0}


def day_matrix(history) -> np.ndarray:
    """Per-day raw columns of a BatteryHistory -> float64 [n_days, 8]:
    cycles, duration, trips, dow_sin, dow_cos, doy_sin, doy_cos, interpolated."""
    n = len(history.dates)
    ordinals = np.fromiter((d.toordinal() for d in history.dates), np.int64, n)
    dow = (ordinals - 1) % 7                      # 0 = Monday
    # day of year as a fraction of the year (365.25 keeps leap years smooth)
    doy = np.fromiter((d.timetuple().tm_yday for d in history.dates), np.float64, n)
    m = np.empty((n, 8))
    m[:, 0] = history.cycles
    m[:, 1] = history.duration
    m[:, 2] = history.trips
    m[:, 3] = np.sin(2 * np.pi * dow / 7)
    m[:, 4] = np.cos(2 * np.pi * dow / 7)
    m[:, 5] = np.sin(2 * np.pi * doy / 365.25)
    m[:, 6] = np.cos(2 * np.pi * doy / 365.25)
    m[:, 7] = history.interpolated
    return m


def levels(days: np.ndarray, ends: np.ndarray, params: dict) -> np.ndarray:
    """Mean cycles of the LEVEL_DAYS days ending at each index in `ends` (+eps) -> [B]."""
    k = int(params["level_days"])
    csum = np.concatenate([[0.0], np.cumsum(days[:, 0])])
    lo = np.maximum(ends + 1 - k, 0)
    return (csum[ends + 1] - csum[lo]) / (ends + 1 - lo) + float(params["eps"])


def window_inputs(days: np.ndarray, ends: np.ndarray, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """Windows ending at each index of `ends` (each >= window-1) -> (x float32 [B, W, F],
    level float32 [B, 1]). Vectorised: training builds thousands at once, the agent one."""
    w = int(params["window"])
    ends = np.asarray(ends, np.int64)
    idx = ends[:, None] + np.arange(1 - w, 1)[None, :]          # [B, W]
    win = days[idx]                                              # [B, W, 8]
    level = levels(days, ends, params)
    eps = float(params["eps"])
    dmean = win[:, :, 1].mean(axis=1, keepdims=True)
    tmean = win[:, :, 2].mean(axis=1, keepdims=True)
    x = np.empty((len(ends), w, len(FEATURES)), np.float32)
    x[:, :, 0] = win[:, :, 0] / level[:, None]
    x[:, :, 1] = np.where(dmean > eps, win[:, :, 1] / np.maximum(dmean, eps), 0.0)
    x[:, :, 2] = np.where(tmean > eps, win[:, :, 2] / np.maximum(tmean, eps), 0.0)
    x[:, :, 3:8] = win[:, :, 3:8]
    x[:, :, 8] = ((np.log(level) - float(params["log_level_mean"]))
                  / float(params["log_level_std"]))[:, None]
    return x, level.astype(np.float32)[:, None]


def targets(days: np.ndarray, ends: np.ndarray, horizon: int = HORIZON) -> np.ndarray:
    """The next `horizon` days of cycles after each origin -> [B, H] (training only)."""
    idx = np.asarray(ends, np.int64)[:, None] + np.arange(1, horizon + 1)[None, :]
    return days[idx, 0]


def pad_history(h, window: int):
    """Complete a history shorter than `window` (>= MIN_DAYS_FOR_PADDING days) backwards
    with copies of its own first whole weeks (same weekdays), flagged interpolated; the
    calendar columns use the real earlier dates. Training pads young batteries the same
    way, so the model has seen such windows."""
    from agent.cleaning import BatteryHistory
    n = len(h)
    need = window - n
    if need <= 0:
        return h
    block = 7 * (n // 7)
    src = np.array([(-m) % block for m in range(need, 0, -1)])       # weekday-aligned sources
    first = h.dates[0]
    dates = [first - dt.timedelta(days=m) for m in range(need, 0, -1)] + list(h.dates)
    cat = lambda a, fill: np.concatenate([fill, a])                   # noqa: E731
    return BatteryHistory(h.battery_id, dates, cat(h.age, np.full(need, h.age[0])), cat(h.trips, h.trips[src]),
                          cat(h.duration, h.duration[src]), cat(h.cycles, h.cycles[src]),
                          cat(h.lifetime, np.full(need, h.lifetime[0])), cat(h.rated, np.full(need, h.rated[0])),
                          cat(h.interpolated, np.ones(need, bool)))
