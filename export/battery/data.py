"""Training data: raw history (a CSV, or a directory of CSVs such as the old ingest
layout, whose extra columns like vehicle_id are ignored; or a lake, read by the Spark job in
export/lake/training.py) -> the agent's cleaning -> split by battery -> windows built by
agent.forecast_features -> three WindowSets.

A window has ONE definition here (window_origins, battery_windows, battery_stats); the
local path (LocalHistories) and the lake's Spark job (LakeHistories, the same functions run
per battery in Spark tasks) both go through training_data(), which splits, normalises on the
training batteries, plans and samples the origins and fills the arrays.

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
from agent.forecast_features import (HORIZON, MIN_DAYS_FOR_PADDING, day_matrix, default_params, levels, pad_history,
                                     targets, window_inputs)

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


def load_histories(path: str | Path) -> tuple[dict[str, BatteryHistory], dict, dict | None]:
    """A CSV or a directory of CSVs -> (clean histories by battery id, cleaning stats, truth or None)."""
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


# -- one definition of a training window (this process and the Spark job alike) ------------

def window_origins(n_days: int, params: dict, stride: int, rng: np.random.Generator | None = None,
                   max_per_battery: int | None = None, to_last_day: bool = False,
                   min_history: int | None = MIN_DAYS_FOR_PADDING) -> np.ndarray:
    """Origins (index of the last input day) of one battery's windows: every `stride` days
    (random phase when rng) from the first day a window can be made (padded, from min_history
    days on) to the last day with H days of targets after it (to_last_day: the last day, when
    the generator's truth supplies targets); at most max_per_battery of them, drawn by rng."""
    w, h = int(params["window"]), HORIZON
    last = n_days - 1 if to_last_day else n_days - 1 - h
    first = w - 1 if not min_history else min(w, min_history) - 1
    if last < first:
        return np.zeros(0, np.int64)
    phase = int(rng.integers(0, stride)) if rng is not None else 0
    ends = np.arange(first + phase, last + 1, stride)
    if max_per_battery and len(ends) > max_per_battery and rng is not None:
        ends = np.sort(rng.choice(ends, max_per_battery, replace=False))
    return ends


def battery_windows(hist: BatteryHistory, ends: np.ndarray, params: dict, truth: dict | None = None) -> dict:
    """One battery's windows at origins `ends` -> {x, level, y, ordinal, lifetime, rated} (+
    expected, true_lifetime, true_alert with truth: targets are then the true cycles, and
    origins without H true days after them are dropped). `ends` ascending, as window_origins
    gives them; young origins (before a full window) get the agent's padding."""
    w, h = int(params["window"]), HORIZON
    ends = np.asarray(ends, np.int64)
    days = day_matrix(hist)
    young, old = ends[ends < w - 1], ends[ends >= w - 1]
    xs, ls = [], []
    for e in young:                     # the agent's padding, one origin at a time
        xy, ly = window_inputs(day_matrix(pad_history(hist.head(int(e) + 1), w)), np.array([w - 1]), params)
        xs.append(xy)
        ls.append(ly)
    if len(old):
        xo, lo = window_inputs(days, old, params)
        xs.append(xo)
        ls.append(lo)
    ord0 = hist.dates[0].toordinal()
    part = {"x": np.concatenate(xs), "level": np.concatenate(ls), "ordinal": ord0 + ends,
            "lifetime": hist.lifetime[ends], "rated": hist.rated[ends]}
    if truth is not None:
        ti = ends + (ord0 - truth["ordinal0"])                 # index of origin in truth arrays
        idx = ti[:, None] + np.arange(1, h + 1)[None, :]
        ok = idx[:, -1] < len(truth["cycles"])
        part = {k: v[ok] for k, v in part.items()}
        idx, ti = idx[ok], ti[ok]
        part["y"] = truth["cycles"][idx]
        part["expected"] = truth["expected"][idx]
        part["true_lifetime"] = truth["lifetime"][ti]
        part["true_alert"] = (truth["lifetime"][ti] + part["y"].sum(1)) >= truth["rated"]
    else:
        part["y"] = targets(days, ends, h)
    part["y"] = part["y"].astype(np.float32)
    return part


# -- normalisation inputs: per battery, then fitted on the training batteries only ---------

def battery_stats(hist: BatteryHistory, params: dict) -> dict:
    """One battery's inputs to normalisation: its length, the moments (n, mean, M2) of
    log(level) over all its days (the log_level scaler) and its 28-day mean cycles (the fleet
    norm the manifest carries for explanations)."""
    lv = np.log(levels(hist.cycles[:, None], np.arange(len(hist)), params))
    mean = float(lv.mean())
    k = len(hist) // 28
    return {"days": len(hist), "lv": (len(lv), mean, float(((lv - mean) ** 2).sum())),
            "means28": hist.cycles[: k * 28].reshape(k, 28).mean(1)}


def log_level_scaler(moments: list[tuple]) -> tuple[float, float]:
    """(n, mean, M2) of each training battery, in order -> (mean, std + 1e-6) of log(level)
    over all their days (pairwise combination: the same answer from any number of parts)."""
    n, mean, m2 = 0, 0.0, 0.0
    for nb, mb, m2b in moments:
        if nb:
            d, tot = mb - mean, n + nb
            mean += d * nb / tot
            m2 += m2b + d * d * n * nb / tot
            n = tot
    return float(mean), float(np.sqrt(m2 / max(n, 1)) + 1e-6)


def fleet_norm(means28: list[np.ndarray]) -> dict:
    """The training fleet's daily-usage norm (per-battery 28-day means), for explanations."""
    m = np.concatenate(means28) if any(len(a) for a in means28) else np.array([0.1])
    q = np.percentile(m, np.arange(0, 101, 5))
    return {"median_daily_cycles": float(np.median(m)), "mean_daily_cycles": float(m.mean()),
            "quantiles": [round(float(v), 6) for v in q],
            "note": "distribution of 28-day mean daily cycles over the training fleet (quantiles 0..100 step 5)"}


# -- the training set: split by battery, normalise on train, plan and sample, build --------

ROLES = ("train", "validation", "test")
VAL_STRIDE = 7


class LocalHistories:
    """Clean histories held by this process (a CSV, a directory of CSVs, a generated fleet);
    the lake's counterpart, export.lake.training.LakeHistories, keeps them in Spark."""

    def __init__(self, histories: dict[str, BatteryHistory], cleaning: dict, truth: dict | None = None):
        self.histories, self.cleaning, self.truth = histories, cleaning, truth
        self.ids = list(histories)

    def stats(self, params: dict) -> dict[str, dict]:
        return {b: battery_stats(h, params) for b, h in self.histories.items()}

    def windows(self, requests, params: dict):
        """(battery id, origins, truth or None) -> yields (battery id, battery_windows(...))."""
        for bid, ends, truth in requests:
            yield bid, battery_windows(self.histories[bid], ends, params, truth)

    def close(self) -> None:
        pass


def training_source(path, master: str | None = None, max_batteries: int | None = None, seed: int = 7):
    """A lake root -> LakeHistories (a Spark job: a seeded sample of batteries, cleaned and
    windowed in Spark); anything else -> LocalHistories of load_histories(path)."""
    from export.lake.training import LakeHistories, is_lake
    if is_lake(path):
        from export.lake.spark import session
        return LakeHistories(session(master, "trey-export train battery"), str(path), max_batteries, seed)
    return LocalHistories(*load_histories(path))


@dataclass
class TrainingData:
    train: WindowSet
    validation: WindowSet
    test: WindowSet
    params: dict                 # preprocessing, log_level scaler fitted on the training batteries
    fleet_norm: dict             # of the training batteries
    split: dict                  # role -> battery ids
    sampling: dict               # windows planned per role, the cap, windows kept


def cap_windows(plan: dict, max_windows: int | None, seed: int) -> dict:
    """At most max_windows windows in all: each role keeps its share of the planned origins,
    drawn without replacement by a generator seeded with `seed` (same plan + seed, same sample)."""
    total = sum(len(e) for r in plan for _, e in plan[r])
    if not max_windows or total <= max_windows:
        return plan
    n_role = {r: int(sum(len(e) for _, e in plan[r])) for r in ROLES}
    quota = {r: max_windows * n // total for r, n in n_role.items()}
    for r in ROLES:                      # a role with windows keeps at least one (taken from the largest)
        if n_role[r] and not quota[r] and max_windows >= len(ROLES):
            quota[r] = 1
            quota[max(quota, key=quota.get)] -= 1
    rng = np.random.default_rng([seed, 3])
    out = {}
    for role in ROLES:
        items = plan[role]
        counts = np.array([len(e) for _, e in items], np.int64)
        n = int(counts.sum())
        keep = np.zeros(n, bool)
        keep[rng.choice(n, quota[role], replace=False)] = True
        bounds = np.concatenate([[0], np.cumsum(counts)])
        out[role] = [(bid, ends[keep[bounds[i]:bounds[i + 1]]]) for i, (bid, ends) in enumerate(items)
                     if keep[bounds[i]:bounds[i + 1]].any()]
    return out


class _Filler:
    """The arrays of one role's WindowSet, allocated from its plan and filled battery by battery
    in whatever order the windows arrive: memory is the sample, never more."""

    def __init__(self, items: list, ids: list, params: dict):
        counts = [len(e) for _, e in items]
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        index = {b: i for i, b in enumerate(ids)}
        self.at = {bid: (index[bid], int(starts[i])) for i, (bid, _) in enumerate(items)}
        self.ids, self.n = list(ids), int(starts[-1])
        n, w, f = self.n, int(params["window"]), len(params["features"])
        self.a = {"x": np.empty((n, w, f), np.float32), "level": np.empty((n, 1), np.float32),
                  "y": np.empty((n, HORIZON), np.float32), "battery": np.empty(n, np.int64),
                  "ordinal": np.empty(n, np.int64), "lifetime": np.empty(n), "rated": np.empty(n)}
        self.filled = np.zeros(n, bool)

    def put(self, bid: str, part: dict) -> None:
        bi, o = self.at[bid]
        k = len(part["y"])
        for name, v in part.items():
            if name not in self.a:                 # truth columns, when there is truth
                self.a[name] = np.zeros((self.n,) + v.shape[1:], v.dtype)
            self.a[name][o:o + k] = v
        self.a["battery"][o:o + k] = bi
        self.filled[o:o + k] = True

    def result(self) -> WindowSet:
        if not self.filled.any():
            raise ValueError("no windows: histories shorter than window + horizon")
        a = self.a
        ws = WindowSet(a["x"], a["level"], a["y"], a["battery"], a["ordinal"], a["lifetime"], a["rated"], self.ids,
                       a.get("expected"), a.get("true_alert"), a.get("true_lifetime"))
        return ws if self.filled.all() else ws.subset(self.filled)    # truth dropped a few origins


def training_data(source, window: int, seed: int, train_stride: int = 10, eval_stride: int = 3,
                  max_per_battery: int | None = None, max_windows: int | None = None) -> TrainingData:
    """Split the source's batteries (train / validation / test, by battery: no window of a
    test battery is ever seen in training), fit the log_level scaler and fleet norm on the
    training batteries only, plan each battery's origins (train: stride with a random phase
    and at most max_per_battery; validation: every 7 days; test: eval_stride, to the last day
    when there is truth), sample at most max_windows in all (cap_windows), then have the
    source build exactly those windows (battery_windows) and fill the three WindowSets."""
    train_ids, val_ids, test_ids = split_batteries(source.ids, seed)
    split = {"train": train_ids, "validation": val_ids, "test": test_ids}
    params = default_params(window)
    stats = source.stats(params)
    params["log_level_mean"], params["log_level_std"] = log_level_scaler([stats[b]["lv"] for b in train_ids])
    norm = fleet_norm([stats[b]["means28"] for b in train_ids])
    truth = source.truth or {}
    rng = np.random.default_rng(seed)
    plan = {}
    for role, stride in (("train", train_stride), ("validation", VAL_STRIDE), ("test", eval_stride)):
        plan[role] = []
        for bid in split[role]:
            ends = window_origins(stats[bid]["days"], params, stride, rng if role == "train" else None,
                                  max_per_battery if role == "train" else None,
                                  to_last_day=role == "test" and bid in truth)
            if len(ends):
                plan[role].append((bid, ends))
    planned = {r: int(sum(len(e) for _, e in plan[r])) for r in ROLES}
    plan = cap_windows(plan, max_windows, seed)
    fill = {r: _Filler(plan[r], split[r], params) for r in ROLES}
    role_of = {bid: r for r in ROLES for bid, _ in plan[r]}
    requests = [(bid, ends, truth.get(bid) if r == "test" else None) for r in ROLES for bid, ends in plan[r]]
    for bid, part in source.windows(requests, params):
        fill[role_of[bid]].put(bid, part)
    sets = {r: fill[r].result() for r in ROLES}
    sampling = {"planned": planned, "max_windows": max_windows, "kept": {r: len(sets[r]) for r in ROLES}}
    log.info("windows: planned %s, kept %s (cap %s)", planned, sampling["kept"], max_windows)
    return TrainingData(sets["train"], sets["validation"], sets["test"], params, norm, split, sampling)
