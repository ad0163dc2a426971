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


def calendar(epoch_days: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 (any shape) -> [..., 4]: dow_sin, dow_cos, doy_sin, doy_cos."""
    d = np.asarray(epoch_days, np.int64)
    dow = (d + 3) % 7                             # 0 = Monday (1970-01-01 was a Thursday)
    dd = d.astype("datetime64[D]")
    # day of year (1-based) as a fraction of the year (365.25 keeps leap years smooth)
    doy = (dd - dd.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.int64) + 1
    return np.stack([np.sin(2 * np.pi * dow / 7), np.cos(2 * np.pi * dow / 7),
                     np.sin(2 * np.pi * doy / 365.25), np.cos(2 * np.pi * doy / 365.25)], axis=-1)


def day_matrix(history) -> np.ndarray:
    """Per-day raw columns of a BatteryHistory -> float64 [n_days, 8]:
    cycles, duration, trips, dow_sin, dow_cos, doy_sin, doy_cos, interpolated."""
    n = len(history.dates)
    epoch = np.fromiter((d.toordinal() - 719163 for d in history.dates), np.int64, n)
    m = np.empty((n, 8))
    m[:, 0] = history.cycles
    m[:, 1] = history.duration
    m[:, 2] = history.trips
    m[:, 3:7] = calendar(epoch)
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
    level float32 [B, 1]). Vectorised: training builds thousands at once from one battery."""
    w = int(params["window"])
    ends = np.asarray(ends, np.int64)
    idx = ends[:, None] + np.arange(1 - w, 1)[None, :]          # [B, W]
    return window_features(days[idx], levels(days, ends, params), params)


def window_features(win: np.ndarray, level: np.ndarray, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """Raw window columns [B, W, 8] (day_matrix layout) + level [B] -> the model inputs."""
    w = win.shape[1]
    eps = float(params["eps"])
    dmean = win[:, :, 1].mean(axis=1, keepdims=True)
    tmean = win[:, :, 2].mean(axis=1, keepdims=True)
    x = np.empty((len(win), w, len(FEATURES)), np.float32)
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


def window_sources(lengths: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each of the `window` days of the window at the end of a history of each length
    comes from -> (src [B, W] index into that history, back [B, W] days before its first day,
    0 for a real day). The padding rule: a history shorter than the window (>=
    MIN_DAYS_FOR_PADDING days) is completed backwards with copies of its own first whole
    weeks (same weekdays), flagged interpolated, at the real earlier dates."""
    n = np.asarray(lengths, np.int64)[:, None]
    t = n - window + np.arange(window)[None, :]                        # day index, < 0 = padded
    back = np.where(t < 0, -t, 0)
    block = np.maximum(7 * (n // 7), 1)
    src = np.where(t < 0, (-back) % block, t)
    return src, back


def batch_window_inputs(batch, which: np.ndarray, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """The window at the end of each history `which` of an agent.cleaning.BatchHistories ->
    (x float32 [B, W, F], level float32 [B, 1]); padded like pad_history. The fleet batch path
    and the car (one battery) both come through here."""
    w = int(params["window"])
    which = np.asarray(which, np.int64)
    start = batch.offsets[which][:, None]
    src, back = window_sources(batch.offsets[which + 1] - batch.offsets[which], w)
    rows = start + src
    padded = back > 0
    win = np.empty((len(which), w, 8))
    win[:, :, 0] = batch.cycles[rows]
    win[:, :, 1] = batch.duration[rows]
    win[:, :, 2] = batch.trips[rows]
    win[:, :, 3:7] = calendar(np.where(padded, batch.day[start] - back, batch.day[rows]))
    win[:, :, 7] = np.where(padded, 1.0, batch.interpolated[rows])
    k = int(params["level_days"])
    level = win[:, -k:, 0].mean(axis=1) + float(params["eps"])
    return window_features(win, level, params)


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
    src = window_sources(np.array([n]), window)[0][0, :need]         # weekday-aligned sources
    first = h.dates[0]
    dates = [first - dt.timedelta(days=m) for m in range(need, 0, -1)] + list(h.dates)
    cat = lambda a, fill: np.concatenate([fill, a])                   # noqa: E731
    return BatteryHistory(h.battery_id, dates, cat(h.age, np.full(need, h.age[0])), cat(h.trips, h.trips[src]),
                          cat(h.duration, h.duration[src]), cat(h.cycles, h.cycles[src]),
                          cat(h.lifetime, np.full(need, h.lifetime[0])), cat(h.rated, np.full(need, h.rated[0])),
                          cat(h.interpolated, np.ones(need, bool)))
