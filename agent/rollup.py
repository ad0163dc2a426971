"""Samples -> trips -> daily rows (seed schema + health indicators). Pure logic, no I/O.

    r = DailyRollup(use_counter=True)         # False: integrate |current| (no IBS counter mapped)
    closed = r.feed(view)                     # view = {canonical: value} of one decoded frame
    # closed: list of daily rows (dicts keyed by agent.schema.DAILY_COLUMNS) closed by this frame
    r.events                                  # pending ("battery_changed", old, new) tuples; caller drains
    state = r.snapshot(); DailyRollup.restore(state)    # JSON-serialisable checkpoint

The rules are those of shared_decisions.md (the simulator's truth follows the same):
- clock = latest Vehicle.CurrentTime; frames before the first one are dropped (`no_time`);
  without the time signal mapped the caller passes the system clock via `set_clock`.
- day = UTC date of the clock; day D closes when the clock reaches a later date. The date never
  moves backwards (a clock step back keeps today's accumulators).
- a trip is ignition ON|START ... any other state; it counts, with its whole duration, on the
  day ignition ON happened. A trip still running when its day closes (never in the simulator)
  puts the part up to midnight on that day and the rest on the following day(s), not counted
  again as a trip - a closed day cannot be reopened.
- throughput: delta of the IBS counter between consecutive samples of the same battery, on the
  day of the earlier sample (or |I| trapezoid over vehicle time without the counter). A counter
  that steps back (sensor reset) rebases without a negative delta. A delta whose day has
  already closed (missed midnight frame) goes to the current day.
- Lifetime_Cycles_Used starts at cycles_used(first counter value) for a battery first seen, then
  adds each closed day's cycles: it never decreases. A new battery id starts its own history.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from agent import signals as S
from agent.schema import cycles_used

ON_STATES = ("ON", "START")
_EPOCH_ORD = date(1970, 1, 1).toordinal()


def utc_day(epoch_s: float) -> int:
    """Proleptic ordinal of the UTC date of an epoch time (cheap to compare and serialise)."""
    return _EPOCH_ORD + int(epoch_s // 86400)


def day_iso(ordinal: int) -> str:
    return date.fromordinal(ordinal).isoformat()


class _Day:
    __slots__ = ("bid", "day", "trips", "trip_s", "ah", "min_crank", "resting", "cranked", "min_t", "max_t")

    def __init__(self, bid, day):
        self.bid, self.day = bid, day
        self.trips = 0
        self.trip_s = 0.0
        self.ah = 0.0
        self.min_crank = self.resting = self.min_t = self.max_t = None
        self.cranked = False

    def to_json(self) -> list:
        return [self.bid, self.day, self.trips, self.trip_s, self.ah, self.min_crank, self.resting,
                self.cranked, self.min_t, self.max_t]

    @classmethod
    def from_json(cls, v) -> "_Day":
        d = cls(v[0], v[1])
        (d.trips, d.trip_s, d.ah, d.min_crank, d.resting, d.cranked, d.min_t, d.max_t) = v[2:]
        return d


class _Battery:
    __slots__ = ("rated", "capacity", "install", "last_c", "last_c_day", "last_i", "first_ah", "lifetime")

    def __init__(self):
        self.rated = self.capacity = self.install = None
        self.last_c = self.last_c_day = None      # counter value / day of that sample
        self.last_i = None                        # (clock, |I|, day) for the integration fallback
        self.first_ah = None                      # counter at first sight (lifetime base)
        self.lifetime = None                      # cycles through the last closed day

    def to_json(self) -> list:
        return [self.rated, self.capacity, self.install, self.last_c, self.last_c_day, self.last_i,
                self.first_ah, self.lifetime]

    @classmethod
    def from_json(cls, v) -> "_Battery":
        b = cls()
        (b.rated, b.capacity, b.install, b.last_c, b.last_c_day, b.last_i, b.first_ah, b.lifetime) = v
        if b.last_i is not None:
            b.last_i = tuple(b.last_i)
        return b


class DailyRollup:
    def __init__(self, use_counter: bool = True):
        self.use_counter = use_counter
        self.clock: float | None = None
        self.today: int | None = None          # date ordinal
        self.state: str | None = None
        self.bid = None
        self.batteries: dict = {}
        self.open: dict = {}                   # (bid, day) -> _Day
        self.trip: tuple | None = None         # (start clock, bid, day)
        self.no_time = 0
        self.events: list = []
        self._closed: list = []

    # ---- feeding -----------------------------------------------------------------------
    def feed(self, view: dict) -> list:
        """Apply one frame's canonical values; returns the daily rows this frame closed."""
        t = view.get(S.CURRENT_TIME)
        if t is not None:
            self.set_clock(t)
        elif self.clock is None:
            self.no_time += 1
            return []
        if S.BATTERY_ID in view:
            self._identity(view)
        if S.SYSTEM_STATE in view:
            self._state(view[S.SYSTEM_STATE])
        v = view.get(S.VOLTAGE)
        if v is not None:
            self._voltage(v)
        v = view.get(S.TEMPERATURE)
        if v is not None and self.bid is not None:
            a = self._acc()
            if a.min_t is None or v < a.min_t:
                a.min_t = v
            if a.max_t is None or v > a.max_t:
                a.max_t = v
        if self.use_counter:
            v = view.get(S.THROUGHPUT)
            if v is not None:
                self._counter(v)
        else:
            v = view.get(S.CURRENT)
            if v is not None:
                self._integrate(abs(v))
        if self._closed:
            out, self._closed = self._closed, []
            return out
        return []

    def set_clock(self, t: float) -> None:
        self.clock = t
        d = _EPOCH_ORD + int(t // 86400)
        if self.today is None:
            self.today = d
        elif d > self.today:
            self._close_before(d)
            self.today = d

    def _acc(self) -> _Day:
        key = (self.bid, self.today)
        a = self.open.get(key)
        if a is None:
            a = self.open[key] = _Day(self.bid, self.today)
        return a

    def _identity(self, view: dict) -> None:
        bid = view[S.BATTERY_ID]
        bid = int(bid) if isinstance(bid, float) and bid.is_integer() else bid
        b = self.batteries.get(bid)
        if b is None:
            b = self.batteries[bid] = _Battery()
        v = view.get(S.RATED_CYCLES)
        if v is not None:
            b.rated = int(v)
        v = view.get(S.NOMINAL_CAPACITY)
        if v is not None and v > 0:
            b.capacity = float(v)
        v = view.get(S.INSTALL_DATE)
        if v is not None:
            b.install = int(v)
        if bid != self.bid:
            if self.bid is not None:
                self.events.append(("battery_changed", self.bid, bid))
            self.bid = bid

    def _state(self, st: str) -> None:
        prev, self.state = self.state, st
        if self.bid is None:
            return
        a = self._acc()
        if st == "START":
            a.cranked = True
        on, was_on = st in ON_STATES, prev in ON_STATES
        if on and not was_on:
            a.trips += 1
            self.trip = (self.clock, a.bid, a.day)
        elif was_on and not on and self.trip is not None:
            t0, bid, day = self.trip
            self.trip = None
            a0 = self.open.get((bid, day))
            (a0 if a0 is not None else a).trip_s += max(0.0, self.clock - t0)   # clock stepped back: 0

    def _voltage(self, v: float) -> None:
        if self.bid is None:
            return
        a = self._acc()
        st = self.state
        if st == "START" and (a.min_crank is None or v < a.min_crank):
            a.min_crank = v
        if a.resting is None and not a.cranked and (st == "ACC" or st == "OFF"):
            a.resting = v

    def _add_ah(self, day: int, ah: float) -> None:
        a = self.open.get((self.bid, day))
        if a is None:
            a = self._acc()           # its day already closed: keep the Ah on today
        a.ah += ah

    def _counter(self, c: float) -> None:
        if self.bid is None:
            return
        self._acc()
        b = self.batteries[self.bid]
        if b.last_c is None:
            if b.first_ah is None and b.lifetime is None:
                b.first_ah = c
        elif c >= b.last_c:
            self._add_ah(b.last_c_day, c - b.last_c)
        b.last_c, b.last_c_day = c, self.today

    def _integrate(self, i_abs: float) -> None:
        if self.bid is None:
            return
        self._acc()
        b = self.batteries[self.bid]
        if b.last_i is not None:
            t0, i0, d0 = b.last_i
            dt = self.clock - t0
            if dt > 0:
                self._add_ah(d0, (i0 + i_abs) * 0.5 * dt / 3600.0)
        if b.last_i is None or self.clock >= b.last_i[0]:
            b.last_i = (self.clock, i_abs, self.today)

    # ---- closing -----------------------------------------------------------------------
    def _close_before(self, d: int) -> None:
        keys = sorted((k for k in self.open if k[1] < d),
                      key=lambda k: (k[1], 0 if isinstance(k[0], int) else 1, k[0] if isinstance(k[0], int) else 0, str(k[0])))
        if self.trip is not None:
            t0, bid, day = self.trip
            if day < d:
                # A trip running across midnight: its part so far stays on its start day.
                midnight = (d - _EPOCH_ORD) * 86400.0
                a0 = self.open.get((bid, day))
                if a0 is not None:
                    a0.trip_s += max(0.0, midnight - t0)
                self.trip = (midnight, bid, d)
                self.open.setdefault((bid, d), _Day(bid, d))
        for k in keys:
            self._closed.append(self._row(self.open.pop(k)))

    def _row(self, a: _Day) -> dict:
        b = self.batteries.get(a.bid) or _Battery()
        daily = life = None
        if b.capacity:
            daily = cycles_used(a.ah, b.capacity)
            if b.lifetime is None:
                b.lifetime = cycles_used(b.first_ah or 0.0, b.capacity)
            b.lifetime += daily
            life = b.lifetime
        return {
            "Date": day_iso(a.day),
            "Battery_ID": a.bid,
            "Battery_Age_Days": (a.day - _EPOCH_ORD) - b.install if b.install is not None else None,
            "Number_Of_Trips": a.trips,
            "Daily_Trip_Duration": a.trip_s / 60.0,
            "Daily_Cycles_Used": daily,
            "Lifetime_Cycles_Used": life,
            "Battery_Rated_Cycles": b.rated,
            "Min_Cranking_Voltage": a.min_crank,
            "Resting_Voltage": a.resting,
            "Min_Temperature": a.min_t,
            "Max_Temperature": a.max_t,
        }

    # ---- checkpoint --------------------------------------------------------------------
    def snapshot(self) -> dict:
        """JSON-serialisable state (open accumulators, battery history, clock, trip)."""
        return {
            "v": 1, "use_counter": self.use_counter, "clock": self.clock, "today": self.today,
            "state": self.state, "bid": self.bid, "trip": list(self.trip) if self.trip else None,
            "no_time": self.no_time,
            "batteries": [[k, b.to_json()] for k, b in self.batteries.items()],
            "open": [a.to_json() for a in self.open.values()],
        }

    @classmethod
    def restore(cls, snap: dict) -> "DailyRollup":
        r = cls(bool(snap.get("use_counter", True)))
        r.clock, r.today, r.state, r.bid = snap["clock"], snap["today"], snap["state"], snap["bid"]
        r.trip = tuple(snap["trip"]) if snap.get("trip") else None
        r.no_time = int(snap.get("no_time", 0))
        r.batteries = {k: _Battery.from_json(v) for k, v in snap["batteries"]}
        for v in snap["open"]:
            a = _Day.from_json(v)
            r.open[(a.bid, a.day)] = a
        return r

    def lifetime(self, bid=None):
        """Lifetime cycles of a battery through its last closed day (None if unknown)."""
        b = self.batteries.get(self.bid if bid is None else bid)
        return None if b is None else b.lifetime


def now_utc() -> float:
    return datetime.now(timezone.utc).timestamp()
