"""Raw daily battery history -> clean, gap-free daily series (one function, used by
training in `export/` and by the agent's forecaster alike: no training/serving skew).

It reproduces the original workshop notebook's preparation, without pandas:
  1. parse rows; a malformed value raises CleaningError naming the line and column;
  2. drop duplicate rows (exact duplicates silently; same battery + timestamp with other
     values keeps the first one and counts the conflict);
  3. 12-hourly rows (`Date` = `YYYY-MM-DD HH:MM:SS`, every one at 00:00 or 12:00) are put
     on a 12 h grid, missing slots time-interpolated, then resampled to days: sum of trips,
     durations and cycles, minimum age, minimum rated cycles; a battery with timestamped
     rows off that grid (e.g. one row per minute) has them summed per day instead, nothing
     interpolated inside a day (so its lifetime is the sum of what was reported);
  4. the daily series is made gap-free: missing days are time-interpolated (linear in
     days); a value missing inside a present row (empty cell) is interpolated the same way;
  5. Lifetime_Cycles_Used is recomputed as the running sum of Daily_Cycles_Used, anchored
     at the lifetime reported on the first day (0 for a history that starts at install, the
     IBS counter for an agent installed mid-life), so defects cannot corrupt it.

Trailing gaps cannot be interpolated (nothing after them): a history simply ends at its
last present day. Health columns are not part of the modelling series and are ignored.
A battery none of whose rows has a Daily_Cycles_Used value is not a history: it is listed
in CleaningResult.skipped (battery id -> rows), never silently dropped.

Bounds (a row outside them is a CleaningError naming its line, before anything is
allocated for it): dates in MIN_DATE..MAX_DATE, one battery's history at most
MAX_HISTORY_DAYS long, numbers finite, >= 0 and <= MAX_VALUE.

Steps 2, 4 and 5 run vectorised over any number of batteries at once (`clean_columns`, the
fleet batch path, and `clean_history`, the car's path, share them): the result is a
BatchHistories (all batteries' days concatenated), from which BatteryHistory views are cut.

Public API:
  clean_history(rows, first_line=2) -> CleaningResult   rows: iterable of dicts (CSV
      DictReader rows or the agent store's history); values str/number/None.
  read_history_csv(path) -> CleaningResult              header-checked CSV reader.
  clean_columns(battery_ids, days, values) -> (BatchHistories, stats, skipped)
      typed columns of daily rows (epoch days; the lake's daily table), no per-row Python.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Columns the cleaning needs; the rest of the seed schema is optional.
REQUIRED_COLUMNS = ("Date", "Battery_ID", "Daily_Cycles_Used")
NUMERIC_COLUMNS = ("Battery_Age_Days", "Number_Of_Trips", "Daily_Trip_Duration",
                   "Daily_Cycles_Used", "Lifetime_Cycles_Used", "Battery_Rated_Cycles")
# Summed when 12-hourly rows are resampled to days; the others take the day's minimum.
_SUMMED = ("Number_Of_Trips", "Daily_Trip_Duration", "Daily_Cycles_Used")
_HALF_DAY = 43200
_EPOCH_ORDINAL = 719163                  # date(1970, 1, 1).toordinal()
MIN_DATE, MAX_DATE = dt.date(1900, 1, 1), dt.date(2199, 12, 31)
MAX_HISTORY_DAYS = 36_600                # 100 years: a longer span is a broken date, not a battery
MAX_VALUE = 1e9                          # larger counts / cycles are corrupt (and overflow sums)
_CYC = NUMERIC_COLUMNS.index("Daily_Cycles_Used")


class CleaningError(ValueError):
    """A row that cannot be read; the message names the line (1-based, header = line 1)."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass
class BatteryHistory:
    """One battery's clean daily series; every array has one entry per day in `dates`
    (consecutive calendar days, no gaps)."""
    battery_id: str
    dates: list                      # list[datetime.date]
    age: np.ndarray                  # Battery_Age_Days
    trips: np.ndarray                # Number_Of_Trips
    duration: np.ndarray             # Daily_Trip_Duration (min)
    cycles: np.ndarray               # Daily_Cycles_Used
    lifetime: np.ndarray             # recomputed running sum
    rated: np.ndarray                # Battery_Rated_Cycles
    interpolated: np.ndarray         # bool: day (or one of its values) was filled in

    def __len__(self) -> int:
        return len(self.dates)

    def tail(self, n: int) -> "BatteryHistory":
        """The last n days (a view of the same series; lifetime keeps its anchor)."""
        s = slice(max(0, len(self) - n), len(self))
        return BatteryHistory(self.battery_id, self.dates[s], self.age[s], self.trips[s],
                              self.duration[s], self.cycles[s], self.lifetime[s], self.rated[s],
                              self.interpolated[s])

    def head(self, n: int) -> "BatteryHistory":
        """The first n days: the history as it was known on day n-1."""
        s = slice(0, n)
        return BatteryHistory(self.battery_id, self.dates[s], self.age[s], self.trips[s],
                              self.duration[s], self.cycles[s], self.lifetime[s], self.rated[s],
                              self.interpolated[s])

    def rows(self) -> list[dict]:
        """Back to seed-schema dicts (Date as YYYY-MM-DD)."""
        return [{"Date": d.isoformat(), "Battery_ID": self.battery_id,
                 "Battery_Age_Days": float(self.age[i]), "Number_Of_Trips": float(self.trips[i]),
                 "Daily_Trip_Duration": float(self.duration[i]),
                 "Daily_Cycles_Used": float(self.cycles[i]),
                 "Lifetime_Cycles_Used": float(self.lifetime[i]),
                 "Battery_Rated_Cycles": float(self.rated[i])} for i, d in enumerate(self.dates)]


@dataclass
class CleaningResult:
    batteries: dict                              # battery_id -> BatteryHistory (input order)
    stats: dict = field(default_factory=dict)    # counts of what was fixed
    skipped: dict = field(default_factory=dict)  # battery_id -> rows, for batteries without any cycles
    batch: object = None                         # the same histories as one BatchHistories


def _parse_date(value, line: int) -> tuple[int, bool]:
    """-> (epoch seconds UTC, is_12_hourly_format)."""
    text = str(value).strip() if value is not None else ""
    try:
        if len(text) == 10:
            d, secs, timed = dt.date.fromisoformat(text), 0, False
        elif len(text) > 40:
            raise ValueError
        else:
            t = dt.datetime.fromisoformat(text.replace("T", " "))
            if t.tzinfo is not None:
                t = t.astimezone(dt.timezone.utc).replace(tzinfo=None)
            d, secs, timed = t.date(), t.hour * 3600 + t.minute * 60 + t.second, True
    except (ValueError, OverflowError):
        raise CleaningError(line, f"Date {text[:40]!r} is not YYYY-MM-DD or YYYY-MM-DD HH:MM:SS") from None
    if not MIN_DATE <= d <= MAX_DATE:
        raise CleaningError(line, f"Date {text!r} outside {MIN_DATE}..{MAX_DATE}")
    return (d.toordinal() - _EPOCH_ORDINAL) * 86400 + secs, timed


def _parse_number(value, column: str, line: int) -> float:
    if value is None:
        return math.nan
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        x = float(value)
    else:
        text = str(value).strip()
        if text == "" or text.lower() in ("nan", "na", "null", "none"):
            return math.nan
        try:
            x = float(text) if len(text) <= 64 else float("x")
        except ValueError:
            raise CleaningError(line, f"{column} {text[:40]!r} is not a number") from None
    if math.isinf(x) or (not math.isnan(x) and not 0 <= x <= MAX_VALUE):
        raise CleaningError(line, f"{column} {str(value)[:40]!r} out of range (must be finite, >= 0 and <= {MAX_VALUE:g})")
    return x


def _battery_id(value, line: int) -> str:
    if value is None or str(value).strip() == "":
        raise CleaningError(line, "Battery_ID is empty")
    if len(str(value)) > 128:
        raise CleaningError(line, f"Battery_ID longer than 128 characters ({len(str(value))})")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    if text.endswith(".0") and text[:-2].isdigit():   # 1001.0 from a float round-trip
        text = text[:-2]
    return text


def _fill(ts: np.ndarray, grid: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear time interpolation of `values` (NaN = missing) known at `ts` onto `grid`.
    Returns (filled, was_filled). Outside the known range the nearest value is held."""
    ok = ~np.isnan(values)
    out = np.full(len(grid), np.nan)
    if ok.any():
        out = np.interp(grid, ts[ok], values[ok])
    idx = np.searchsorted(ts, grid)
    present = (idx < len(ts)) & (ts[np.minimum(idx, len(ts) - 1)] == grid)
    known = np.zeros(len(grid), bool)
    known[present] = ok[idx[present]]
    return out, ~known


def _resample_12h(ts: np.ndarray, vals: dict[str, np.ndarray]) -> tuple[np.ndarray, dict, np.ndarray]:
    """12-hourly rows -> one row per day (the notebook's asfreq('12H') + interpolate +
    resample('D')). Returns (day epoch seconds, values, filled flag per day)."""
    grid = np.arange(ts[0] - ts[0] % _HALF_DAY, ts[-1] + 1, _HALF_DAY, dtype=np.int64)
    day = grid // 86400
    days, inv = np.unique(day, return_inverse=True)
    out, flag = {}, np.zeros(len(days), bool)
    for col, v in vals.items():
        filled, was = _fill(ts, grid, v)
        if col in _SUMMED:
            out[col] = np.bincount(inv, weights=filled, minlength=len(days))
        else:   # minimum of the day (age, rated) or last value (lifetime)
            agg = np.full(len(days), np.inf if col != "Lifetime_Cycles_Used" else -np.inf)
            if col == "Lifetime_Cycles_Used":
                np.maximum.at(agg, inv, np.nan_to_num(filled, nan=-np.inf))
            else:
                np.minimum.at(agg, inv, np.nan_to_num(filled, nan=np.inf))
            out[col] = np.where(np.isfinite(agg), agg, np.nan)
        if col in ("Daily_Cycles_Used",):
            np.logical_or.at(flag, inv, was)
    return days * 86400, out, flag


@dataclass
class BatchHistories:
    """Clean daily series of many batteries, concatenated: battery b owns the days
    offsets[b]:offsets[b+1] (consecutive calendar days, `day` = days since 1970-01-01)."""
    battery_ids: list
    offsets: np.ndarray              # [B + 1]
    day: np.ndarray                  # int64 [G]
    age: np.ndarray
    trips: np.ndarray
    duration: np.ndarray
    cycles: np.ndarray
    lifetime: np.ndarray
    rated: np.ndarray
    interpolated: np.ndarray         # bool

    def __len__(self) -> int:
        return len(self.battery_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def history(self, b: int) -> BatteryHistory:
        s = slice(int(self.offsets[b]), int(self.offsets[b + 1]))
        dates = [dt.date.fromordinal(int(d) + _EPOCH_ORDINAL) for d in self.day[s]]
        return BatteryHistory(self.battery_ids[b], dates, self.age[s], self.trips[s], self.duration[s],
                              self.cycles[s], self.lifetime[s], self.rated[s], self.interpolated[s])

    @classmethod
    def of(cls, histories: list) -> "BatchHistories":
        """BatteryHistory objects -> one batch (the car's forecaster batches through this)."""
        lengths = np.array([len(h) for h in histories], np.int64)
        cat = lambda name: np.concatenate([np.asarray(getattr(h, name)) for h in histories]) \
            if histories else np.zeros(0)                                    # noqa: E731
        day = np.fromiter((d.toordinal() - _EPOCH_ORDINAL for h in histories for d in h.dates), np.int64,
                          int(lengths.sum()))
        return cls([h.battery_id for h in histories], np.concatenate([[0], np.cumsum(lengths)]), day,
                   cat("age").astype(float), cat("trips").astype(float), cat("duration").astype(float),
                   cat("cycles").astype(float), cat("lifetime").astype(float), cat("rated").astype(float),
                   cat("interpolated").astype(bool))


def _segment_fill(v: np.ndarray, known: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Linear interpolation of v over grid positions where `known`, separately inside each
    segment [starts, ends] (one battery's days); before the first / after the last known
    value of a segment the nearest one is held; a segment with none stays NaN. Only the
    missing positions are computed (few, in real data)."""
    miss = np.flatnonzero(~known)
    if not len(miss):
        return v
    kpos = np.flatnonzero(known)
    out = v.copy()
    if not len(kpos):
        out[miss] = np.nan
        return out
    j = np.searchsorted(kpos, miss)
    p = kpos[np.maximum(j - 1, 0)]
    n = kpos[np.minimum(j, len(kpos) - 1)]
    lo, hi = starts[miss], ends[miss]
    has_p = (j > 0) & (p >= lo)
    has_n = (j < len(kpos)) & (n <= hi)
    vp, vn = v[p], v[n]
    span = np.where(n > p, n - p, 1)
    mid = (vn - vp) / span * (miss - p) + vp
    out[miss] = np.where(has_p & has_n, mid, np.where(has_p, vp, np.where(has_n, vn, np.nan)))
    return out


def _fill_days(key: np.ndarray, day: np.ndarray, vals: np.ndarray, flag: np.ndarray, n_keys: int):
    """Day rows sorted by (key, day), unique -> gap-free series per key (steps 4-5), vectorised.
    Returns (keys present in order, offsets, grid day, columns dict, interpolated)."""
    first_row = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]])) if len(key) else np.zeros(0, np.int64)
    last_row = np.concatenate([first_row[1:] - 1, [len(key) - 1]]) if len(key) else first_row
    keys = key[first_row]
    first_day, last_day = day[first_row], day[last_row]
    length = (last_day - first_day + 1).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(length)]).astype(np.int64)
    g = int(offsets[-1])
    seg = np.repeat(np.arange(len(keys)), length)
    starts, ends = offsets[:-1][seg], offsets[1:][seg] - 1
    grid_day = first_day[seg] + (np.arange(g) - starts)
    rel = np.repeat(np.arange(len(keys)), last_row - first_row + 1)        # row -> segment
    pos = offsets[:-1][rel] + (day - first_day[rel])
    cols, interp = {}, np.zeros(g, bool)
    for j, c in enumerate(NUMERIC_COLUMNS):
        v = np.full(g, np.nan)
        v[pos] = vals[:, j]
        known = ~np.isnan(v)
        filled = _segment_fill(v, known, starts, ends)
        cols[c] = filled
        if c in ("Daily_Cycles_Used", "Number_Of_Trips", "Daily_Trip_Duration"):
            interp |= ~known & ~np.isnan(filled)
    interp[pos] |= flag                      # a day from an incomplete 12 h pair is partly filled in
    # age advances one per day: a battery with no known age counts from its first day
    age = cols["Battery_Age_Days"]
    age = np.where(np.isnan(age), (np.arange(g) - starts).astype(float), age)
    cycles = np.nan_to_num(cols["Daily_Cycles_Used"], nan=0.0)
    # running sum anchored at the lifetime reported for the first day (step 5)
    first_life = vals[first_row, NUMERIC_COLUMNS.index("Lifetime_Cycles_Used")]
    offset0 = np.where(np.isnan(first_life), 0.0, np.maximum(first_life - cycles[offsets[:-1]], 0.0))
    cs = np.cumsum(cycles)
    base = np.concatenate([[0.0], cs])[offsets[:-1]]
    lifetime = offset0[seg] + (cs - base[seg])
    out = {"age": age, "trips": np.nan_to_num(cols["Number_Of_Trips"], nan=0.0),
           "duration": np.nan_to_num(cols["Daily_Trip_Duration"], nan=0.0), "cycles": cycles,
           "lifetime": lifetime, "rated": cols["Battery_Rated_Cycles"]}
    return keys, offsets, grid_day, out, interp


def _timed_days(ts: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One battery's timestamped rows -> day rows (day, values [n, 6], filled flag)."""
    if (ts % _HALF_DAY == 0).all():          # 12-hourly: the notebook's grid + interpolation
        dts, dvals, dflag = _resample_12h(ts, {c: vals[:, j] for j, c in enumerate(NUMERIC_COLUMNS)})
        return dts // 86400, np.column_stack([dvals[c] for c in NUMERIC_COLUMNS]), dflag
    # off the 12 h grid (sub-daily logging): sum per day what was reported, interpolate nothing
    days, inv = np.unique(ts // 86400, return_inverse=True)
    out = np.full((len(days), len(NUMERIC_COLUMNS)), np.nan)
    for j, c in enumerate(NUMERIC_COLUMNS):
        v = vals[:, j]
        ok = ~np.isnan(v)
        if c in _SUMMED:
            tot = np.bincount(inv[ok], weights=v[ok], minlength=len(days))
            out[:, j] = np.where(np.bincount(inv[ok], minlength=len(days)) > 0, tot, np.nan)
        else:
            agg = np.full(len(days), -np.inf if c == "Lifetime_Cycles_Used" else np.inf)
            (np.maximum if c == "Lifetime_Cycles_Used" else np.minimum).at(agg, inv[ok], v[ok])
            out[:, j] = np.where(np.isfinite(agg), agg, np.nan)
    return days, out, np.zeros(len(days), bool)


def _clean_parsed(key, names, ts, timed, vals, lines, stats) -> tuple[BatchHistories, dict]:
    """Parsed rows (any order) -> BatchHistories + skipped {battery id: rows}; steps 2-5."""
    n = len(key)
    if n > 1 and not ((np.diff(key) > 0) | ((np.diff(key) == 0) & (np.diff(ts) >= 0))).all():
        order = np.lexsort((np.arange(n), ts, key))       # stable: the first of duplicates wins
        key, ts, timed, vals, lines = key[order], ts[order], timed[order], vals[order], lines[order]
    dup = np.zeros(n, bool)
    if n > 1:
        dup[1:] = (key[1:] == key[:-1]) & (ts[1:] == ts[:-1])
    if dup.any():
        keep_idx = np.maximum.accumulate(np.where(~dup, np.arange(n), 0))
        a, b = vals[dup], vals[keep_idx[dup]]
        same = ((a == b) | (np.isnan(a) & np.isnan(b))).all(axis=1)
        stats["duplicates_dropped"] += int(same.sum())
        stats["conflicting_duplicates"] += int((~same).sum())
        key, ts, timed, vals, lines = key[~dup], ts[~dup], timed[~dup], vals[~dup], lines[~dup]
    stats["half_day_rows"] += int(timed.sum())
    rows_per_key = np.bincount(key, minlength=len(names))
    if len(key):                             # bound each battery's span before any grid exists
        starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
        ends = np.concatenate([starts[1:] - 1, [len(key) - 1]])
        span = ts[ends] // 86400 - ts[starts] // 86400
        bad = np.flatnonzero(span > MAX_HISTORY_DAYS)
        if len(bad):
            s0, e0 = starts[bad[0]], ends[bad[0]]
            raise CleaningError(int(max(lines[s0], lines[e0])),
                                f"battery {names[key[s0]]!r}: dates span {int(span[bad[0]])} days (lines "
                                f"{int(lines[s0])} and {int(lines[e0])}); a history spans at most {MAX_HISTORY_DAYS}")
    day, flag = ts // 86400, np.isnan(vals[:, _CYC])
    if timed.any():                          # batteries with timestamped rows: to day rows first
        parts_k, parts_d, parts_v, parts_f = [key[~timed]], [day[~timed]], [vals[~timed]], [flag[~timed]]
        for k in np.unique(key[timed]):
            m = (key == k) & timed
            d, v, f = _timed_days(ts[m], vals[m])
            have = set(day[(key == k) & ~timed].tolist())
            keep = np.array([x not in have for x in d.tolist()], bool)     # a daily row wins
            parts_k.append(np.full(int(keep.sum()), k))
            parts_d.append(d[keep])
            parts_v.append(v[keep])
            parts_f.append(f[keep])
        key, day, vals, flag = (np.concatenate(parts_k), np.concatenate(parts_d), np.concatenate(parts_v),
                                np.concatenate(parts_f))
        o = np.lexsort((day, key))
        key, day, vals, flag = key[o], day[o], vals[o], flag[o]
    # a battery without any cycles value is reported, not forecast
    has_cycles = np.bincount(key, weights=~np.isnan(vals[:, _CYC]), minlength=len(names)) > 0
    skipped = {names[k]: int(rows_per_key[k]) for k in range(len(names)) if not has_cycles[k] and rows_per_key[k]}
    stats["batteries_without_cycles"] += len(skipped)
    keep = has_cycles[key]
    key, day, vals, flag = key[keep], day[keep], vals[keep], flag[keep]
    keys, offsets, grid_day, cols, interp = _fill_days(key, day, vals, flag, len(names))
    stats["days_interpolated"] += int(interp.sum())
    # batteries in input order (first row seen), as the per-row path always returned them
    batch = BatchHistories([names[k] for k in keys], offsets, grid_day.astype(np.int64), cols["age"], cols["trips"],
                           cols["duration"], cols["cycles"], cols["lifetime"], cols["rated"], interp)
    return batch, skipped


def _new_stats() -> dict:
    return {"rows": 0, "duplicates_dropped": 0, "conflicting_duplicates": 0,
            "half_day_rows": 0, "days_interpolated": 0, "batteries_without_cycles": 0}


def clean_history(rows, first_line: int = 2) -> CleaningResult:
    """Clean raw daily rows of any number of batteries. See the module docstring."""
    return _clean_numbered(enumerate(rows, start=first_line))


def _clean_numbered(numbered_rows) -> CleaningResult:
    """(line, row dict) pairs -> CleaningResult."""
    stats = _new_stats()
    names: dict[str, int] = {}
    key, ts, timed, vals, lines = [], [], [], [], []
    for line, row in numbered_rows:
        stats["rows"] += 1
        if not isinstance(row, dict):
            raise CleaningError(line, "not a row of named columns")
        for col in REQUIRED_COLUMNS:
            if col not in row:
                raise CleaningError(line, f"missing column {col}")
        bid = _battery_id(row["Battery_ID"], line)
        t, half = _parse_date(row["Date"], line)
        vals.append(tuple(_parse_number(row.get(c), c, line) for c in NUMERIC_COLUMNS))
        key.append(names.setdefault(bid, len(names)))
        ts.append(t)
        timed.append(half)
        lines.append(line)
    batch, skipped = _clean_parsed(np.array(key, np.int64), list(names), np.array(ts, np.int64),
                                   np.array(timed, bool), np.array(vals, float).reshape(-1, len(NUMERIC_COLUMNS)),
                                   np.array(lines, np.int64), stats)
    return CleaningResult({batch.battery_ids[b]: batch.history(b) for b in range(len(batch))}, stats, skipped, batch)


def clean_columns(battery_ids, days, values: dict, first_line: int = 1, names: list | None = None):
    """The fleet batch form of clean_history for typed daily rows (e.g. the lake's daily
    table): battery_ids [n] (str), days [n] int (days since 1970-01-01), values {column:
    float array [n]} for NUMERIC_COLUMNS (missing column = all unknown; NaN = empty cell).
    Same rules, same bounds (lines counted from first_line in row order) ->
    (BatchHistories, stats, skipped). With `names`, battery_ids are integer codes into it."""
    stats = _new_stats()
    if names is not None:                    # battery_ids given as codes into names (0, 1, ... in order)
        key = np.asarray(battery_ids, np.int64)
        n = len(key)
    else:
        ids = np.asarray(battery_ids, dtype=object)
        n = len(ids)
        uniq, key = np.unique(ids.astype(str), return_inverse=True)
        first_seen = np.full(len(uniq), n, np.int64)
        np.minimum.at(first_seen, key, np.arange(n))
        order = np.argsort(first_seen, kind="stable")
        rank = np.empty(len(uniq), np.int64)
        rank[order] = np.arange(len(uniq))                                # battery ids in input order
        names = [str(x) for x in uniq[order]]
        key = rank[key]
    stats["rows"] = n
    day = np.asarray(days, np.int64)
    vals = np.column_stack([np.asarray(values[c], float) if c in values else np.full(n, np.nan)
                            for c in NUMERIC_COLUMNS]) if n else np.zeros((0, len(NUMERIC_COLUMNS)))
    lines = np.arange(first_line, first_line + n)
    lo, hi = MIN_DATE.toordinal() - _EPOCH_ORDINAL, MAX_DATE.toordinal() - _EPOCH_ORDINAL
    bad = np.flatnonzero((day < lo) | (day > hi))
    if len(bad):
        raise CleaningError(int(lines[bad[0]]), f"Date (day {int(day[bad[0]])}) outside {MIN_DATE}..{MAX_DATE}")
    badv = np.isinf(vals) | (vals < 0) | (vals > MAX_VALUE)
    if badv.any():
        r, c = np.argwhere(badv)[0]
        raise CleaningError(int(lines[r]), f"{NUMERIC_COLUMNS[c]} {vals[r, c]!r} out of range "
                                           f"(must be finite, >= 0 and <= {MAX_VALUE:g})")
    batch, skipped = _clean_parsed(key, names, day * 86400, np.zeros(n, bool), vals, lines, stats)
    return batch, stats, skipped


MAX_LINE_BYTES = 64 * 1024          # a seed-schema row is ~100 bytes; longer is not a history line


def csv_rows(fh, source: str = "history"):
    """Bounded CSV reader over a binary file: yields dict rows, header-checked. A line longer
    than MAX_LINE_BYTES, text that is not UTF-8 (e.g. UTF-16) or a malformed CSV field is a
    CleaningError naming the line, raised before the line is held in memory whole."""
    import codecs
    state = {"line": 0}

    def lines():
        while True:
            raw = fh.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            state["line"] += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                raise CleaningError(state["line"], f"line longer than {MAX_LINE_BYTES} bytes")
            if state["line"] == 1 and raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                raise CleaningError(1, "the file is UTF-16; save it as UTF-8")
            try:
                yield raw.decode("utf-8-sig" if state["line"] == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise CleaningError(state["line"], f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None

    reader = csv.reader(lines())
    try:
        header = next(reader, None) or []
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise CleaningError(1, f"header lacks required column(s) {missing} (got {[h[:40] for h in header[:12]]})")
        for values in reader:
            if len(values) > len(header):
                raise CleaningError(state["line"], f"{len(values)} fields, the header has {len(header)}")
            yield state["line"], dict(zip(header, values))
    except csv.Error as exc:
        raise CleaningError(max(state["line"], 1), f"malformed CSV: {exc}") from None


def clean_csv(fh) -> CleaningResult:
    """clean_history over csv_rows(fh); errors name the file's physical lines."""
    return _clean_numbered(csv_rows(fh))


def read_history_csv(path: str | Path) -> CleaningResult:
    """Read and clean a seed-schema CSV; a missing required column or a malformed value
    raises CleaningError naming the line."""
    with open(path, "rb") as fh:
        return clean_csv(fh)
