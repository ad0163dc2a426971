"""Battery end-of-life forecast on the car: clean history -> 30-day forecast (ONNX Runtime)
-> failure rule -> answer with an explanation. No torch here (ORT only).

API (used by `trey-agent forecast` and the daemon when a day closes):

    fc = BatteryForecaster.from_bundle(verify_bundle(path))   # or BatteryForecaster.default()
    fc.forecast(rows)            -> dict   rows = raw daily rows of ONE battery (the store's
                                           history or CSV dicts; defects allowed). If rows hold
                                           several batteries, the one with the latest row wins.
    fc.forecast_all(rows)        -> list[dict]  one answer per battery (one batched ORT call)

Answer fields: battery_id, as_of (last date), lifetime_cycles, rated_cycles,
forecast_daily_cycles [30], projected_lifetime_cycles_30d, days_to_rated (int or None),
alert, fallback (None or the reason), history_days, model ({name, version}), explanation
{recent_mean_daily_cycles, fleet_median_daily_cycles, fleet_percentile, ratio_to_fleet, text}.

Failure rule (from the original design): lifetime + sum(next 30 days) >= rated -> alert.
days_to_rated = first day k (1..30) at which lifetime + forecast[:k] reaches rated (0 if it
already has), else None.

Fallback for short histories (fewer clean days than the model's window W):
  * >= MIN_DAYS_FOR_PADDING (28) days: the window is completed backwards with copies of the
    battery's own first whole weeks (weekday-aligned, flagged as interpolated) and the
    model runs                               -> fallback = "padded_history"
  * >= MIN_DAYS_FOR_MEAN days: every future day = mean of the available days (the naive
    baseline over what exists)           -> fallback = "short_history_mean"
  * fewer (or no usable) days: every day = the training fleet's median daily cycles from
    the manifest                          -> fallback = "fleet_median"
Cleaning errors (malformed rows) raise agent.cleaning.CleaningError naming the line.
"""

from __future__ import annotations

import logging

import numpy as np

from agent.cleaning import BatteryHistory, clean_history
from agent.forecast_features import MIN_DAYS_FOR_PADDING
from agent.forecast_features import day_matrix, pad_history, window_inputs

log = logging.getLogger(__name__)
MIN_DAYS_FOR_MEAN = 7


class BatteryForecaster:
    def __init__(self, model_bytes: bytes, manifest: dict):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1       # a head unit has few cores and other work to do
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
        self.manifest = manifest
        self.params = manifest["preprocessing"]
        self.window = int(self.params["window"])
        self.horizon = int(self.params["horizon"])
        self.fleet = manifest["fleet_norm"]
        self._in_x, self._in_level = manifest["inputs"][0]["name"], manifest["inputs"][1]["name"]

    @classmethod
    def from_bundle(cls, bundle) -> "BatteryForecaster":
        """From a verified agent.bundle.Bundle (the session is built from the verified bytes)."""
        return cls(bundle.model_bytes, bundle.manifest)

    @classmethod
    def default(cls, trusted_keys=None) -> "BatteryForecaster":
        from agent.bundle import DEFAULT_BATTERY_BUNDLE, verify_bundle
        return cls.from_bundle(verify_bundle(DEFAULT_BATTERY_BUNDLE, trusted_keys))

    # -- model ---------------------------------------------------------------------------
    def predict_windows(self, x: np.ndarray, level: np.ndarray) -> np.ndarray:
        """Raw model call: x [B, W, F] float32, level [B, 1] -> [B, H] daily cycles."""
        out = self.session.run(None, {self._in_x: x.astype(np.float32, copy=False),
                                      self._in_level: level.astype(np.float32, copy=False)})[0]
        return np.maximum(out, 0.0)

    def forecast_histories(self, histories: list[BatteryHistory]) -> list[dict]:
        """Clean histories -> answers; all full-window batteries go through one ORT call."""
        full = [i for i, h in enumerate(histories) if len(h) >= MIN_DAYS_FOR_PADDING]
        preds: dict[int, np.ndarray] = {}
        if full:
            xs, ls = [], []
            for i in full:
                h = histories[i].tail(self.window)
                if len(h) < self.window:
                    h = pad_history(h, self.window)
                x, lv = window_inputs(day_matrix(h), np.array([self.window - 1]), self.params)
                xs.append(x)
                ls.append(lv)
            out = self.predict_windows(np.concatenate(xs), np.concatenate(ls))
            preds = {i: out[k] for k, i in enumerate(full)}
        return [self._answer(h, preds.get(i), "padded_history" if i in preds and len(h) < self.window else None)
                for i, h in enumerate(histories)]

    # -- public ------------------------------------------------------------------------
    def forecast_all(self, rows) -> list[dict]:
        result = clean_history(rows)
        return self.forecast_histories(list(result.batteries.values()))

    def forecast(self, rows, battery_id: str | None = None) -> dict:
        result = clean_history(rows)
        if not result.batteries:
            raise ValueError("no battery history to forecast (no rows with Daily_Cycles_Used)")
        if battery_id is None:
            battery_id = max(result.batteries.values(), key=lambda h: h.dates[-1]).battery_id
        if battery_id not in result.batteries:
            raise ValueError(f"battery {battery_id!r} not in the history")
        return self.forecast_histories([result.batteries[battery_id]])[0]

    # -- rule + explanation ------------------------------------------------------------------
    def _answer(self, h: BatteryHistory, pred: np.ndarray | None, fallback: str | None = None) -> dict:
        if pred is None:
            usable = h.cycles[~h.interpolated] if (~h.interpolated).any() else h.cycles
            if len(h) >= MIN_DAYS_FOR_MEAN and len(usable):
                pred, fallback = np.full(self.horizon, float(h.cycles[-28:].mean())), "short_history_mean"
            else:
                pred, fallback = np.full(self.horizon, float(self.fleet["median_daily_cycles"])), "fleet_median"
        lifetime = float(h.lifetime[-1])
        rated = float(h.rated[-1]) if np.isfinite(h.rated[-1]) else float("nan")
        path = lifetime + np.cumsum(pred)
        projected = float(path[-1])
        if not np.isfinite(rated):
            days_to, alert = None, False
        elif lifetime >= rated:
            days_to, alert = 0, True
        else:
            hit = np.flatnonzero(path >= rated)
            days_to = int(hit[0]) + 1 if len(hit) else None
            alert = projected >= rated
        recent = float(h.cycles[-28:].mean())
        return {
            "battery_id": h.battery_id,
            "as_of": h.dates[-1].isoformat(),
            "lifetime_cycles": round(lifetime, 4),
            "rated_cycles": rated if np.isfinite(rated) else None,
            "forecast_daily_cycles": [round(float(v), 5) for v in pred],
            "projected_lifetime_cycles_30d": round(projected, 4),
            "days_to_rated": days_to,
            "alert": bool(alert),
            "fallback": fallback,
            "history_days": len(h),
            "model": {"name": self.manifest["name"], "version": self.manifest["version"]},
            "explanation": self._explain(recent, lifetime, rated, projected),
        }

    def _explain(self, recent: float, lifetime: float, rated: float, projected: float) -> dict:
        """Recent usage against the training fleet's norm (manifest.fleet_norm)."""
        med = float(self.fleet["median_daily_cycles"])
        q = np.asarray(self.fleet["quantiles"], float)        # daily-cycle quantiles 0..100 %
        pct = float(np.interp(recent, q, np.linspace(0, 100, len(q))))
        ratio = recent / med if med > 0 else None
        remaining = rated - lifetime
        text = (f"Last 28 days: {recent:.3f} cycles/day, "
                + (f"{ratio:.1f}x the fleet median ({med:.3f}; " if ratio is not None else "(")
                + f"heavier than {pct:.0f}% of the fleet). ")
        if np.isfinite(rated):
            text += (f"{lifetime:.1f} of {rated:.0f} rated cycles used; "
                     f"{max(remaining, 0):.1f} left vs {projected - lifetime:.1f} forecast for 30 days.")
        return {"recent_mean_daily_cycles": round(recent, 5), "fleet_median_daily_cycles": round(med, 5),
                "fleet_percentile": round(pct, 1),
                "ratio_to_fleet": round(ratio, 3) if ratio is not None else None, "text": text}

