"""Training data: raw history (a CSV, or a directory of CSVs such as the MQTT ingest's
date-partitioned dataset, whose extra columns like vehicle_id are ignored) -> the agent's
cleaning -> per-battery day matrices -> windows built by agent.forecast_features.

Targets for *training* come only from the cleaned raw data. When the generator's truth
file sits next to the data, evaluation scores against the true daily cycles and can
report the oracle (expected usage); otherwise the cleaned data is the truth and there is
no oracle.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.cleaning import REQUIRED_COLUMNS, BatteryHistory, CleaningError, clean_history
from agent.forecast_features import HORIZON, MIN_DAYS_FOR_PADDING, day_matrix, pad_history, targets, window_inputs

DAILY_DIR = "daily"         # the old CSV ingest layout's daily partitions

from .fleet import RAW_FILE, TRUTH_FILE, load_truth

log = logging.getLogger(__name__)


def _csv_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if (path / RAW_FILE).is_file():
        return [path / RAW_FILE]
    if (path / DAILY_DIR).is_dir():         # an ingest root: its daily partitions, not the alerts
        path = path / DAILY_DIR
    files = sorted(p for p in path.rglob("*.csv") if p.name != TRUTH_FILE)
    if not files:
        raise FileNotFoundError(f"no CSV files under {path}")
    return files


def _rows(files: list[Path]):
    for f in files:
        with open(f, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise CleaningError(1, f"{f}: header lacks {missing}")
            yield from reader


def load_histories(path: str | Path, master: str | None = None, max_batteries: int | None = None,
                   seed: int = 7) -> tuple[dict[str, BatteryHistory], dict, dict | None]:
    """-> (clean histories by battery id, cleaning stats, truth or None). A lake root is read
    by a Spark job (export/lake/training.py: a seeded sample of batteries, cleaned in Spark)."""
    from export.lake.training import is_lake
    if is_lake(path):
        from export.lake.spark import session
        from export.lake.training import lake_histories
        histories, stats = lake_histories(session(master, "trey-export train battery"), str(path),
                                          max_batteries, seed)
        return histories, stats, None
    path = Path(path)
    files = _csv_files(path)
    result = clean_history(_rows(files))
    truth_path = (path if path.is_dir() else path.parent) / TRUTH_FILE
    truth = load_truth(truth_path) if truth_path.is_file() else None
    log.info("loaded %d batteries from %d file(s); cleaning: %s; truth: %s",
             len(result.batteries), len(files), result.stats, bool(truth))
    return result.batteries, result.stats, truth


def split_batteries(ids: list[str], seed: int, test_frac: float = 0.2, val_frac: float = 0.15):
    """Split by battery (never by time inside a battery): train / validation / held-out test."""
    ids = sorted(ids)
    perm = np.random.default_rng(seed + 1).permutation(len(ids))
    n_test = max(1, int(round(test_frac * len(ids))))
    n_val = max(1, int(round(val_frac * len(ids))))
    test = [ids[i] for i in perm[:n_test]]
    val = [ids[i] for i in perm[n_test:n_test + n_val]]
    train = [ids[i] for i in perm[n_test + n_val:]]
    return train, val, test


@dataclass
class WindowSet:
    x: np.ndarray          # [N, W, F] float32
    level: np.ndarray      # [N, 1] float32
    y: np.ndarray          # [N, H] target daily cycles
    battery: np.ndarray    # [N] index into `ids`
    ordinal: np.ndarray    # [N] date ordinal of the origin (last input day)
    lifetime: np.ndarray   # [N] lifetime at origin (cleaned, what the agent knows)
    rated: np.ndarray      # [N]
    ids: list
    expected: np.ndarray | None = None    # [N, H] oracle (generator's expected usage)
    true_alert: np.ndarray | None = None  # [N] truth of the failure rule
    true_lifetime: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, mask) -> "WindowSet":
        f = lambda a: None if a is None else a[mask]   # noqa: E731
        return WindowSet(self.x[mask], self.level[mask], self.y[mask], self.battery[mask], self.ordinal[mask],
                         self.lifetime[mask], self.rated[mask], self.ids, f(self.expected),
                         f(self.true_alert), f(self.true_lifetime))


def build_windows(histories: dict[str, BatteryHistory], ids: list[str], params: dict, stride: int,
                  rng: np.random.Generator | None = None, truth: dict | None = None,
                  max_per_battery: int | None = None, min_history: int | None = MIN_DAYS_FOR_PADDING) -> WindowSet:
    """Windows of the given batteries at origins every `stride` days (random phase when rng).
    With truth: targets = true cycles, plus oracle and alert truth; origins may run up to the
    last in-service day. Without: targets = cleaned cycles, origins need H days after them."""
    w, h = int(params["window"]), HORIZON
    parts = []
    for bi, bid in enumerate(ids):
        hist = histories[bid]
        days = day_matrix(hist)
        n = len(hist)
        tr = truth.get(bid) if truth else None
        last = n - 1 if tr is not None else n - 1 - h
        first = w - 1 if not min_history else min(w, min_history) - 1
        if last < first:
            continue
        phase = int(rng.integers(0, stride)) if rng is not None else 0
        ends = np.arange(first + phase, last + 1, stride)
        if max_per_battery and len(ends) > max_per_battery and rng is not None:
            ends = np.sort(rng.choice(ends, max_per_battery, replace=False))
        if not len(ends):
            continue
        young = ends[ends < w - 1]
        old = ends[ends >= w - 1]
        xs, ls = [], []
        for e in young:                     # the agent's padding, one origin at a time
            xy, ly = window_inputs(day_matrix(pad_history(hist.head(int(e) + 1), w)), np.array([w - 1]), params)
            xs.append(xy)
            ls.append(ly)
        if len(old):
            xo, lo = window_inputs(days, old, params)
            xs.append(xo)
            ls.append(lo)
        x, level = np.concatenate(xs), np.concatenate(ls)
        ord0 = hist.dates[0].toordinal()
        part = {"x": x, "level": level, "battery": np.full(len(ends), bi), "ordinal": ord0 + ends,
                "lifetime": hist.lifetime[ends], "rated": hist.rated[ends]}
        if tr is not None:
            off = ord0 - tr["ordinal0"]
            ti = ends + off                                    # index of origin in truth arrays
            idx = ti[:, None] + np.arange(1, h + 1)[None, :]
            ok = idx[:, -1] < len(tr["cycles"])
            for k in part:
                part[k] = part[k][ok]
            idx, ti = idx[ok], ti[ok]
            part["y"] = tr["cycles"][idx]
            part["expected"] = tr["expected"][idx]
            part["true_lifetime"] = tr["lifetime"][ti]
            part["true_alert"] = (tr["lifetime"][ti] + part["y"].sum(1)) >= tr["rated"]
        else:
            part["y"] = targets(days, ends, h)
        parts.append(part)
    if not parts:
        raise ValueError("no windows: histories shorter than window + horizon")
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return WindowSet(cat["x"], cat["level"], cat["y"].astype(np.float32), cat["battery"], cat["ordinal"],
                     cat["lifetime"], cat["rated"], list(ids), cat.get("expected"), cat.get("true_alert"),
                     cat.get("true_lifetime"))


def fleet_norm(histories: dict[str, BatteryHistory], ids: list[str]) -> dict:
    """The training fleet's daily-usage norm (per-battery 28-day means), for explanations."""
    means = []
    for bid in ids:
        c = histories[bid].cycles
        k = len(c) // 28
        if k:
            means.append(c[: k * 28].reshape(k, 28).mean(1))
    m = np.concatenate(means) if means else np.array([0.1])
    q = np.percentile(m, np.arange(0, 101, 5))
    return {"median_daily_cycles": float(np.median(m)), "mean_daily_cycles": float(m.mean()),
            "quantiles": [round(float(v), 6) for v in q],
            "note": "distribution of 28-day mean daily cycles over the training fleet (quantiles 0..100 step 5)"}


def log_level_scaler(ws: WindowSet) -> tuple[float, float]:
    lv = np.log(ws.level[:, 0].astype(np.float64))
    return float(lv.mean()), float(lv.std() + 1e-6)
