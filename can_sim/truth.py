"""Ground truth: the daily rows a perfect agent computes from the frames the simulator sent.

A small reference implementation of the rules in docs/rollup.md, fed with the agent's
view of every *valid* frame (the quantised canonical values, see frames.py), in bus order:
- clock = latest Vehicle.CurrentTime; samples before the first time value are ignored;
- day = UTC date of the clock; day D closes when the clock moves to a later date;
- a trip is ignition ON|START ... OFF (any state outside ON/START), counted with its whole
  duration on the day ignition ON happened;
- throughput: delta between consecutive IBS counter samples *of the same battery*, attributed
  to the day of the earlier sample; Daily_Cycles_Used = agent.schema.cycles_used(sum, capacity);
- lifetime starts at cycles_used(counter at first sight) and adds each closed day's cycles;
- Min_Cranking_Voltage = min voltage while state START; Resting_Voltage = first voltage sample
  of the day with state ACC/OFF before the day's first START; Min/Max_Temperature over the day.
Rows are keyed (battery, date); a row exists when a battery-related sample fell on that day.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

from agent import signals as S
from agent.decode import REASONS  # the agent owns the drop reasons
from agent.schema import DAILY_COLUMNS, cycles_used

ON_STATES = ("ON", "START")
_EPOCH = date(1970, 1, 1)


def utc_date(epoch_s: float) -> date:
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).date()


@dataclass
class _Day:
    battery_id: int
    day: date
    trips: int = 0
    trip_s: float = 0.0
    throughput_ah: float = 0.0
    min_crank: float | None = None
    resting: float | None = None
    cranked: bool = False
    min_t: float | None = None
    max_t: float | None = None


@dataclass
class _BatteryInfo:
    rated: int | None = None
    capacity: float | None = None
    install_days: int | None = None
    last_counter: float | None = None
    last_counter_day: date | None = None
    lifetime: float | None = None          # through the last closed day


class TruthRollup:
    def __init__(self) -> None:
        self.clock: float | None = None
        self.today: date | None = None
        self.state: str | None = None
        self.battery_id: int | None = None
        self.batteries: dict[int, _BatteryInfo] = {}
        self.open: dict[tuple[int, date], _Day] = {}
        self.rows: list[dict] = []
        self._trip: tuple[float, tuple[int, date]] | None = None

    # ---- feeding -----------------------------------------------------------------------
    def feed(self, view: dict) -> None:
        """One valid frame's canonical values (agent view), in bus order."""
        t = view.get(S.CURRENT_TIME)
        if t is not None:
            self._set_clock(float(t))
        if self.clock is None:
            return
        if S.BATTERY_ID in view:
            self._identity(view)
        if S.SYSTEM_STATE in view:
            self._state(view[S.SYSTEM_STATE])
        if S.VOLTAGE in view:
            self._voltage(float(view[S.VOLTAGE]))
        if S.TEMPERATURE in view:
            acc = self._acc()
            if acc is not None:
                v = float(view[S.TEMPERATURE])
                acc.min_t = v if acc.min_t is None else min(acc.min_t, v)
                acc.max_t = v if acc.max_t is None else max(acc.max_t, v)
        if S.THROUGHPUT in view:
            self._counter(float(view[S.THROUGHPUT]))

    def _set_clock(self, t: float) -> None:
        self.clock = t
        d = utc_date(t)
        if self.today is not None and d > self.today:
            self._close_before(d)
        self.today = d

    def _acc(self) -> _Day | None:
        if self.battery_id is None:
            return None
        key = (self.battery_id, self.today)
        acc = self.open.get(key)
        if acc is None:
            acc = self.open[key] = _Day(self.battery_id, self.today)
        return acc

    def _identity(self, view: dict) -> None:
        bid = int(view[S.BATTERY_ID])
        info = self.batteries.setdefault(bid, _BatteryInfo())
        if S.RATED_CYCLES in view:
            info.rated = int(view[S.RATED_CYCLES])
        if S.NOMINAL_CAPACITY in view:
            info.capacity = float(view[S.NOMINAL_CAPACITY])
        if S.INSTALL_DATE in view:
            info.install_days = int(view[S.INSTALL_DATE])
        self.battery_id = bid

    def _state(self, st: str) -> None:
        prev, self.state = self.state, st
        acc = self._acc()
        if acc is None:
            return
        if st == "START":
            acc.cranked = True
        if st in ON_STATES and prev not in ON_STATES:
            acc.trips += 1
            self._trip = (self.clock, (acc.battery_id, acc.day))
        elif st not in ON_STATES and prev in ON_STATES and self._trip is not None:
            t0, key = self._trip
            self._trip = None
            if key not in self.open:
                raise AssertionError(f"trip started {key} ended after its day closed (sim bug)")
            self.open[key].trip_s += self.clock - t0

    def _voltage(self, v: float) -> None:
        acc = self._acc()
        if acc is None:
            return
        if self.state == "START":
            acc.min_crank = v if acc.min_crank is None else min(acc.min_crank, v)
        if acc.resting is None and not acc.cranked and self.state in ("ACC", "OFF"):
            acc.resting = v

    def _counter(self, c: float) -> None:
        acc = self._acc()
        if acc is None:
            return
        info = self.batteries[self.battery_id]
        if info.last_counter is None:
            info.lifetime = cycles_used(c, info.capacity)
        else:
            delta = c - info.last_counter
            key = (self.battery_id, info.last_counter_day)
            if key in self.open:
                self.open[key].throughput_ah += delta
            elif delta != 0:
                raise AssertionError(f"throughput {delta} Ah for closed day {key} (sim bug)")
        info.last_counter, info.last_counter_day = c, self.today

    def _close_before(self, d: date) -> None:
        for key in sorted((k for k in self.open if k[1] < d), key=lambda k: (k[1], k[0])):
            acc = self.open.pop(key)
            info = self.batteries[acc.battery_id]
            daily = cycles_used(acc.throughput_ah, info.capacity)
            info.lifetime = (info.lifetime or 0.0) + daily
            self.rows.append({
                "Date": acc.day.isoformat(),
                "Battery_ID": acc.battery_id,
                "Battery_Age_Days": (acc.day - _EPOCH).days - info.install_days,
                "Number_Of_Trips": acc.trips,
                "Daily_Trip_Duration": acc.trip_s / 60.0,
                "Daily_Cycles_Used": daily,
                "Lifetime_Cycles_Used": info.lifetime,
                "Battery_Rated_Cycles": info.rated,
                "Min_Cranking_Voltage": acc.min_crank,
                "Resting_Voltage": acc.resting,
                "Min_Temperature": acc.min_t,
                "Max_Temperature": acc.max_t,
                "Cycles_Source": "measured:throughput_counter",     # the truth integrates the IBS counter
            })


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(round(v, 6))
    return str(v)


def write_truth_csv(path: str | Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(DAILY_COLUMNS)
        for r in rows:
            w.writerow([_fmt(r[c]) for c in DAILY_COLUMNS])


def faults_path(truth_path: str | Path) -> Path:
    p = Path(truth_path)
    return p.with_name(p.stem + ".faults.json")


def write_faults_json(path: str | Path, counts: dict[str, int]) -> None:
    Path(path).write_text(json.dumps({k: int(counts.get(k, 0)) for k in REASONS}, indent=1, sort_keys=True) + "\n")


__all__ = ["TruthRollup", "write_truth_csv", "write_faults_json", "faults_path", "utc_date", "REASONS"]
