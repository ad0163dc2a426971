"""Samples -> trips -> daily rows (seed schema + health indicators). Pure logic, no I/O.

    r = DailyRollup(use_counter=True)         # False: integrate |current| (no IBS counter mapped)
    closed = r.feed(view)                     # view = {canonical: value} of one decoded frame
    # closed: list of daily rows (dicts keyed by agent.schema.DAILY_COLUMNS) closed by this frame
    r.events                                  # pending ("battery_changed", old, new) tuples; caller drains
    state = r.snapshot(); DailyRollup.restore(state)    # JSON-serialisable checkpoint

The rules (clock, day closing, trips, throughput, lifetime, the sleeping bus, clock glitches)
are written in docs/rollup.md; the simulator's truth (can_sim/truth.py) follows the same. In
short: clock = vehicle time (or the frames' timestamps); a day closes when the clock reaches a
later date; a gap in the battery samples longer than `sleep_gap_s` is the bus asleep (only the
configured quiescent draw is integrated over it, none by default); days the bus never woke get
their (empty) row so the history stays contiguous; a clock sample far from the current clock is
suspect (`clock_suspect`) until CLOCK_CONFIRM advancing samples agree with it.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from agent import signals as S
from agent.schema import cycles_used

ON_STATES = ("ON", "START")
_EPOCH_ORD = date(1970, 1, 1).toordinal()
CLOCK_JUMP_S = 86400.0       # a clock sample further than this from the clock (ahead or back) is suspect
CLOCK_CONFIRM = 3            # ... until this many samples, each advancing by <= CLOCK_JUMP_S, agree
SLEEP_GAP_S = 30.0           # default: a longer gap between current samples = the bus was asleep
MAX_FILL_DAYS = 400          # never-woke days filled at most (a confirmed multi-year clock step is not a parked car)


class BatteryInfo:
    """The battery when the bus carries no identity frame (the agent's [battery] config)."""
    __slots__ = ("id", "rated_cycles", "nominal_capacity_ah", "install_days")

    def __init__(self, id, rated_cycles=None, nominal_capacity_ah=None, install_days=None):
        self.id, self.rated_cycles = id, rated_cycles
        self.nominal_capacity_ah, self.install_days = nominal_capacity_ah, install_days


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
    def __init__(self, use_counter: bool = True, *, battery: BatteryInfo | None = None,
                 sleep_gap_s: float = SLEEP_GAP_S, quiescent_a: float = 0.0):
        self.use_counter = use_counter
        self.measured = True                   # False: no counter, no current -> no cycles in the rows
        self.estimate: tuple | None = None     # (Ah per engine start, mean A while running) when not measured
        self.sleep_gap_s = float(sleep_gap_s)
        self.quiescent_a = float(quiescent_a)
        self.clock_suspect = 0
        self._suspect: list | None = None      # [last suspect time, samples agreeing]
        self._rx0: float | None = None         # receive time of the last accepted clock sample
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
        if battery is not None:
            self.use_battery(battery)

    def use_battery(self, info: BatteryInfo) -> None:
        """The configured battery (no identity on the bus). Another id than the current one is a
        battery change: a new history, as with an identity frame."""
        view = {S.BATTERY_ID: info.id}
        if info.rated_cycles is not None:
            view[S.RATED_CYCLES] = info.rated_cycles
        if info.nominal_capacity_ah is not None:
            view[S.NOMINAL_CAPACITY] = info.nominal_capacity_ah
        if info.install_days is not None:
            view[S.INSTALL_DATE] = info.install_days
        self._identity(view)

    # ---- feeding -----------------------------------------------------------------------
    def feed(self, view: dict, rx: float | None = None) -> list:
        """Apply one frame's canonical values (rx: its receive time, if known); returns the
        daily rows this frame closed."""
        t = view.get(S.CURRENT_TIME)
        if t is not None:
            if not self.set_clock(t, rx) and len(view) == 1:
                return []
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

    def _jump_explained(self, t: float, rx: float | None) -> bool:
        """A long clock step that the frames' receive times also show (the bus slept, or the
        agent was off) is real; a glitch arrives among frames received at the normal rate."""
        rx0 = self._rx0
        if rx is None or rx0 is None:
            return False
        step = t - self.clock
        return abs((rx - rx0) - step) <= max(60.0, 0.1 * abs(step))

    def clock_ok(self, t: float, rx: float | None = None) -> bool:
        """Would this clock sample be accepted now (not suspect, or confirming a suspect)?"""
        c = self.clock
        if c is None or -CLOCK_JUMP_S <= t - c <= CLOCK_JUMP_S or self._jump_explained(t, rx):
            return True
        sus = self._suspect
        return sus is not None and sus[1] + 1 >= CLOCK_CONFIRM and 0 < t - sus[0] <= CLOCK_JUMP_S

    def set_clock(self, t: float, rx: float | None = None) -> bool:
        """Advance the clock; False if the sample is suspect (counted, not used). rx: the
        frame's receive time, when known."""
        c = self.clock
        if c is not None and not -CLOCK_JUMP_S <= t - c <= CLOCK_JUMP_S and not self._jump_explained(t, rx):
            sus = self._suspect
            if sus is not None and 0 < t - sus[0] <= CLOCK_JUMP_S:
                sus[0] = t
                sus[1] += 1
            else:
                sus = self._suspect = [t, 1]
            if sus[1] < CLOCK_CONFIRM:
                self.clock_suspect += 1
                return False
        self._suspect = None
        if rx is not None:
            self._rx0 = rx
        if not self.use_counter and self.bid is not None:
            b = self.batteries[self.bid]
            if b.last_i is not None and t - b.last_i[0] > self.sleep_gap_s:
                self._asleep(b, t)
        self.clock = t
        d = _EPOCH_ORD + int(t // 86400)
        if self.today is None:
            self.today = d
        elif d > self.today:
            self._close_before(d)
            self.today = d
        return True

    def _asleep(self, b: "_Battery", t: float) -> None:
        """No battery sample for longer than sleep_gap_s: the bus slept. Integrate only the
        configured quiescent draw over the gap, day by day (never the last awake current)."""
        t0 = b.last_i[0]
        b.last_i = None
        q = self.quiescent_a
        if q <= 0 or t <= t0:
            return
        day = _EPOCH_ORD + int(t0 // 86400)
        while t0 < t:
            end = min(t, (day + 1 - _EPOCH_ORD) * 86400.0)
            key = (self.bid, day)
            a = self.open.get(key)
            if a is None:
                if self.today is not None and day < self.today:
                    a = self._acc()          # that day already closed: keep the Ah on today
                else:
                    a = self.open[key] = _Day(self.bid, day)
            a.ah += q * (end - t0) / 3600.0
            t0, day = end, day + 1

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
            dur = max(0.0, self.clock - t0)        # clock stepped back: 0
            (a0 if a0 is not None else a).trip_s += dur
            if self.estimate is not None and not self.measured:
                # No current on this car: the documented estimate (docs/rollup.md).
                (a0 if a0 is not None else a).ah += self.estimate[0] + self.estimate[1] * dur / 3600.0

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
            if 0 < dt <= self.sleep_gap_s:
                self._add_ah(d0, (i0 + i_abs) * 0.5 * dt / 3600.0)
        if b.last_i is None or self.clock >= b.last_i[0]:
            b.last_i = (self.clock, i_abs, self.today)

    # ---- closing -----------------------------------------------------------------------
    def _close_before(self, d: int) -> None:
        if self.bid is not None and self.today is not None and d - self.today > 1:
            # The bus never woke on these days (car parked): still days of the battery's history.
            if d - self.today - 1 <= MAX_FILL_DAYS:
                for day in range(self.today + 1, d):
                    self.open.setdefault((self.bid, day), _Day(self.bid, day))
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
        if b.capacity and (self.measured or self.estimate is not None):
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
            "Cycles_Source": self.cycles_source if daily is not None else None,
        }

    # ---- checkpoint --------------------------------------------------------------------
    def snapshot(self) -> dict:
        """JSON-serialisable state (open accumulators, battery history, clock, trip)."""
        return {
            "v": 1, "use_counter": self.use_counter, "clock": self.clock, "today": self.today,
            "state": self.state, "bid": self.bid, "trip": list(self.trip) if self.trip else None,
            "no_time": self.no_time, "clock_suspect": self.clock_suspect,
            "measured": self.measured, "estimate": list(self.estimate) if self.estimate else None,
            "sleep_gap_s": self.sleep_gap_s, "quiescent_a": self.quiescent_a, "rx0": self._rx0,
            "batteries": [[k, b.to_json()] for k, b in self.batteries.items()],
            "open": [a.to_json() for a in self.open.values()],
        }

    @classmethod
    def restore(cls, snap: dict) -> "DailyRollup":
        r = cls(bool(snap.get("use_counter", True)), sleep_gap_s=snap.get("sleep_gap_s", SLEEP_GAP_S),
                quiescent_a=snap.get("quiescent_a", 0.0))
        r.clock_suspect = int(snap.get("clock_suspect", 0))
        r.measured = bool(snap.get("measured", True))
        r.estimate = tuple(snap["estimate"]) if snap.get("estimate") else None
        r._rx0 = snap.get("rx0")
        r.clock, r.today, r.state, r.bid = snap["clock"], snap["today"], snap["state"], snap["bid"]
        r.trip = tuple(snap["trip"]) if snap.get("trip") else None
        r.no_time = int(snap.get("no_time", 0))
        r.batteries = {k: _Battery.from_json(v) for k, v in snap["batteries"]}
        for v in snap["open"]:
            a = _Day.from_json(v)
            r.open[(a.bid, a.day)] = a
        return r

    @property
    def cycles_source(self) -> str | None:
        """How Daily_Cycles_Used is obtained on this car (docs/rollup.md)."""
        if self.use_counter:
            return "measured:throughput_counter"
        if self.measured:
            return "measured:current"
        if self.estimate is not None:
            return "estimated:engine_time"
        return None

    def lifetime(self, bid=None):
        """Lifetime cycles of a battery through its last closed day (None if unknown)."""
        b = self.batteries.get(self.bid if bid is None else bid)
        return None if b is None else b.lifetime


def now_utc() -> float:
    return datetime.now(timezone.utc).timestamp()
