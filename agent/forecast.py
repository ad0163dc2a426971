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

import datetime as dt
import logging

import numpy as np

from agent.cleaning import BatchHistories, BatteryHistory, clean_history
from agent.forecast_features import MIN_DAYS_FOR_PADDING, batch_window_inputs

log = logging.getLogger(__name__)
MIN_DAYS_FOR_MEAN = 7
_EPOCH = dt.date(1970, 1, 1)


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
        """Raw model call: x [B, W, F] float32, level [B, 1] -> [B, H] daily cycles.
        One window per ORT run: the int8 model quantises its activations with one scale per
        call (DynamicQuantizeLinear), so batching windows would make a battery's forecast
        depend on the batteries it was batched with (up to ~0.006 cycles/day apart); batching
        buys under 10% here. The car, the CLI and the fleet job thus agree exactly."""
        x = x.astype(np.float32, copy=False)
        level = level.astype(np.float32, copy=False)
        out = np.empty((len(x), self.horizon), np.float32)
        run = self.session.run
        for i in range(len(x)):
            out[i] = run(None, {self._in_x: x[i:i + 1], self._in_level: level[i:i + 1]})[0][0]
        return np.maximum(out, 0.0)

    def forecast_histories(self, histories: list[BatteryHistory]) -> list[dict]:
        """Clean histories -> answers (one batched ORT call for all full-window batteries)."""
        return self.forecast_batch(BatchHistories.of(histories))

    def forecast_batch(self, batch: BatchHistories, chunk: int = 2048) -> list[dict]:
        """The batch form: every battery of an agent.cleaning.BatchHistories -> answers, the
        windows, the model and the rule vectorised over the fleet (the car's single battery
        takes the same path)."""
        n = batch.lengths
        pred = np.zeros((len(batch), self.horizon))
        full = np.flatnonzero(n >= MIN_DAYS_FOR_PADDING)
        for i in range(0, len(full), chunk):
            idx = full[i:i + chunk]
            x, lv = batch_window_inputs(batch, idx, self.params)
            pred[idx] = self.predict_windows(x, lv)
        last = batch.offsets[1:] - 1
        csum = np.concatenate([[0.0], np.cumsum(batch.cycles)])
        lo = np.maximum(batch.offsets[1:] - 28, batch.offsets[:-1])
        recent = (csum[batch.offsets[1:]] - csum[lo]) / np.maximum(batch.offsets[1:] - lo, 1)   # last 28 days
        fallback = np.full(len(batch), None, object)
        fallback[(n >= MIN_DAYS_FOR_PADDING) & (n < self.window)] = "padded_history"
        mean = (n < MIN_DAYS_FOR_PADDING) & (n >= MIN_DAYS_FOR_MEAN)
        pred[mean] = recent[mean][:, None]
        fallback[mean] = "short_history_mean"
        med = n < MIN_DAYS_FOR_MEAN
        pred[med] = float(self.fleet["median_daily_cycles"])
        fallback[med] = "fleet_median"
        return self._answers(batch, pred, fallback, recent, last)

    def _answers(self, batch, pred, fallback, recent, last) -> list[dict]:
        """The failure rule and the explanation, vectorised; then one dict per battery."""
        lifetime, rated = batch.lifetime[last], batch.rated[last]
        path = lifetime[:, None] + np.cumsum(pred, axis=1)
        projected = path[:, -1]
        finite = np.isfinite(rated)
        reached = finite & (lifetime >= rated)
        hits = path >= np.where(finite, rated, np.inf)[:, None]
        first_hit = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, -1)
        days_to = np.where(reached, 0, first_hit)
        alert = reached | (finite & (projected >= rated))
        med = float(self.fleet["median_daily_cycles"])
        q = np.asarray(self.fleet["quantiles"], float)        # daily-cycle quantiles 0..100 %
        pct = np.interp(recent, q, np.linspace(0, 100, len(q)))
        model = {"name": self.manifest["name"], "version": self.manifest["version"]}
        preds = np.round(pred, 5).tolist()
        out = []
        for b in range(len(batch)):
            rb = float(rated[b]) if finite[b] else None
            out.append({
                "battery_id": batch.battery_ids[b],
                "as_of": (_EPOCH + dt.timedelta(days=int(batch.day[last[b]]))).isoformat(),
                "lifetime_cycles": round(float(lifetime[b]), 4),
                "rated_cycles": rb,
                "forecast_daily_cycles": preds[b],
                "projected_lifetime_cycles_30d": round(float(projected[b]), 4),
                "days_to_rated": int(days_to[b]) if finite[b] and days_to[b] >= 0 else None,
                "alert": bool(alert[b]),
                "fallback": fallback[b],
                "history_days": int(batch.offsets[b + 1] - batch.offsets[b]),
                "model": dict(model),
                "explanation": self._explain(float(recent[b]), float(lifetime[b]),
                                             rb if rb is not None else float("nan"), float(projected[b]),
                                             med, float(pct[b])),
            })
        return out

    # -- public ------------------------------------------------------------------------
    def forecast_all(self, rows) -> list[dict]:
        return self.forecast_batch(clean_history(rows).batch)

    def forecast(self, rows, battery_id: str | None = None) -> dict:
        result = clean_history(rows)
        if not result.batteries:
            raise ValueError("no battery history to forecast (no rows with Daily_Cycles_Used)")
        if battery_id is None:
            battery_id = max(result.batteries.values(), key=lambda h: h.dates[-1]).battery_id
        if battery_id not in result.batteries:
            raise ValueError(f"battery {battery_id!r} not in the history")
        return self.forecast_histories([result.batteries[battery_id]])[0]

    # -- explanation ---------------------------------------------------------------------
    @staticmethod
    def _explain(recent: float, lifetime: float, rated: float, projected: float, med: float, pct: float) -> dict:
        """Recent usage against the training fleet's norm (manifest.fleet_norm)."""
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

