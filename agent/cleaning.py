"""Raw daily battery history -> clean, gap-free daily series (one function, used by
training in `export/` and by the agent's forecaster alike: no training/serving skew).

It reproduces the original workshop notebook's preparation, without pandas:
  1. parse rows; a malformed value raises CleaningError naming the line and column;
  2. drop duplicate rows (exact duplicates silently; same battery + timestamp with other
     values keeps the first one and counts the conflict);
  3. 12-hourly rows (`Date` = `YYYY-MM-DD HH:MM:SS`) are put on a 12 h grid, missing
     slots time-interpolated, then resampled to days: sum of trips, durations and cycles,
     minimum age, minimum rated cycles;
  4. the daily series is made gap-free: missing days are time-interpolated (linear in
     days); a value missing inside a present row (empty cell) is interpolated the same way;
  5. Lifetime_Cycles_Used is recomputed as the running sum of Daily_Cycles_Used, anchored
     at the lifetime reported on the first day (0 for a history that starts at install, the
     IBS counter for an agent installed mid-life), so defects cannot corrupt it.

Trailing gaps cannot be interpolated (nothing after them): a history simply ends at its
last present day. Health columns are not part of the modelling series and are ignored.

Public API:
  clean_history(rows, first_line=2) -> CleaningResult   rows: iterable of dicts (CSV
      DictReader rows or the agent store's history); values str/number/None.
  read_history_csv(path) -> CleaningResult              header-checked CSV reader.
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


def _parse_date(value, line: int) -> tuple[int, bool]:
    """-> (epoch seconds UTC, is_12_hourly_format)."""
    text = str(value).strip() if value is not None else ""
    try:
        if len(text) == 10:
            d = dt.date.fromisoformat(text)
            return (d.toordinal() - 719163) * 86400, False
        t = dt.datetime.fromisoformat(text.replace("T", " "))
        if t.tzinfo is not None:
            t = t.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return (t.date().toordinal() - 719163) * 86400 + t.hour * 3600 + t.minute * 60 + t.second, True
    except ValueError:
        raise CleaningError(line, f"Date {text!r} is not YYYY-MM-DD or YYYY-MM-DD HH:MM:SS") from None


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
            x = float(text)
        except ValueError:
            raise CleaningError(line, f"{column} {text!r} is not a number") from None
    if math.isinf(x) or (not math.isnan(x) and x < 0):
        raise CleaningError(line, f"{column} {value!r} out of range (must be finite and >= 0)")
    return x


def _battery_id(value, line: int) -> str:
    if value is None or str(value).strip() == "":
        raise CleaningError(line, "Battery_ID is empty")
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


def _clean_battery(bid: str, recs: list) -> BatteryHistory | None:
    recs.sort(key=lambda r: r[0])
    half = [r for r in recs if r[1]]
    daily = [r for r in recs if not r[1]]
    day_ts, day_vals, day_flag = [], {c: [] for c in NUMERIC_COLUMNS}, []
    seen_days: set[int] = set()
    if daily:
        for r in daily:
            seen_days.add(r[0] // 86400)
        day_ts.append(np.array([r[0] for r in daily], np.int64))
        for j, c in enumerate(NUMERIC_COLUMNS):
            day_vals[c].append(np.array([r[2][j] for r in daily]))
        day_flag.append(np.isnan(day_vals["Daily_Cycles_Used"][-1]))
    if half:
        ts = np.array([r[0] for r in half], np.int64)
        vals = {c: np.array([r[2][j] for r in half]) for j, c in enumerate(NUMERIC_COLUMNS)}
        dts, dvals, dflag = _resample_12h(ts, vals)
        keep = np.array([d // 86400 not in seen_days for d in dts], bool)   # a daily row wins
        day_ts.append(dts[keep])
        for c in NUMERIC_COLUMNS:
            day_vals[c].append(dvals[c][keep])
        day_flag.append(dflag[keep])
    ts = np.concatenate(day_ts)
    order = np.argsort(ts, kind="stable")
    ts = ts[order]
    vals = {c: np.concatenate(day_vals[c])[order] for c in NUMERIC_COLUMNS}
    flag = np.concatenate(day_flag)[order]
    if np.isnan(vals["Daily_Cycles_Used"]).all():
        return None
    grid = np.arange(ts[0], ts[-1] + 1, 86400, dtype=np.int64)
    out, interp = {}, np.zeros(len(grid), bool)
    for c in NUMERIC_COLUMNS:
        filled, was = _fill(ts, grid, vals[c])
        out[c] = filled
        if c in ("Daily_Cycles_Used", "Number_Of_Trips", "Daily_Trip_Duration"):
            interp |= was & ~np.isnan(filled)
    # a day that came from an incomplete 12 h pair is also partly interpolated
    idx = np.searchsorted(grid, ts)
    interp[idx] |= flag
    # age advances one per day: fill it exactly from any known day rather than linearly
    age = out["Battery_Age_Days"]
    known_age = ~np.isnan(vals["Battery_Age_Days"])
    if known_age.any():
        k = np.flatnonzero(known_age)[0]
        age = np.where(np.isnan(age), vals["Battery_Age_Days"][k] + (grid - ts[k]) / 86400, age)
    else:
        age = np.arange(len(grid), dtype=float)
    rated = out["Battery_Rated_Cycles"]
    cycles = np.nan_to_num(out["Daily_Cycles_Used"], nan=0.0)
    trips = np.nan_to_num(out["Number_Of_Trips"], nan=0.0)
    duration = np.nan_to_num(out["Daily_Trip_Duration"], nan=0.0)
    # anchor the running sum at the lifetime reported for the first day
    first_life = vals["Lifetime_Cycles_Used"][0]
    offset = first_life - cycles[0] if not np.isnan(first_life) else 0.0
    lifetime = max(offset, 0.0) + np.cumsum(cycles)
    dates = [dt.date.fromordinal(int(d // 86400) + 719163) for d in grid]
    return BatteryHistory(bid, dates, age, trips, duration, cycles, lifetime, rated, interp)


def clean_history(rows, first_line: int = 2) -> CleaningResult:
    """Clean raw daily rows of any number of batteries. See the module docstring."""
    stats = {"rows": 0, "duplicates_dropped": 0, "conflicting_duplicates": 0,
             "half_day_rows": 0, "days_interpolated": 0, "batteries_without_cycles": 0}
    per_battery: dict[str, dict[int, tuple]] = {}
    for line, row in enumerate(rows, start=first_line):
        stats["rows"] += 1
        if not isinstance(row, dict):
            raise CleaningError(line, "not a row of named columns")
        for col in REQUIRED_COLUMNS:
            if col not in row:
                raise CleaningError(line, f"missing column {col}")
        bid = _battery_id(row["Battery_ID"], line)
        ts, half = _parse_date(row["Date"], line)
        nums = tuple(_parse_number(row.get(c), c, line) for c in NUMERIC_COLUMNS)
        slot = per_battery.setdefault(bid, {})
        prev = slot.get(ts)
        if prev is not None:
            same = all((a == b) or (math.isnan(a) and math.isnan(b)) for a, b in zip(prev[2], nums))
            stats["duplicates_dropped" if same else "conflicting_duplicates"] += 1
            continue
        stats["half_day_rows"] += half
        slot[ts] = (ts, half, nums)
    out = {}
    for bid, slot in per_battery.items():
        h = _clean_battery(bid, list(slot.values()))
        if h is None:
            stats["batteries_without_cycles"] += 1
            continue
        stats["days_interpolated"] += int(h.interpolated.sum())
        out[bid] = h
    return CleaningResult(out, stats)


def read_history_csv(path: str | Path) -> CleaningResult:
    """Read and clean a seed-schema CSV; a missing required column or a malformed value
    raises CleaningError naming the line."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise CleaningError(1, f"header lacks required column(s) {missing} (got {header})")
        return clean_history(reader, first_line=2)
