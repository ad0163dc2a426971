"""The virtual car: usage + battery + bus faults -> a time-ordered stream of CAN frames
and the ground-truth daily rows of exactly that stream.

Decimation (real cycle times would mean ~10^8 frames for 400 days). The car emits *frame
sets*: one frame of every mapped message (time, battery identity, power mode, IBS status,
IBS throughput, speed, odometer — 7 frames with the reference DBC), all stamped with the
same whole vehicle second (GW_VehicleTime), frame timestamps t + k ms in that order:
- every UTC midnight (00:00:00), always parked — preceded by one IBS_Throughput frame
  (timestamp 23:59:59.95, GW time not yet advanced) carrying the counter at midnight, so the
  day's last counter pair belongs to the day even for an agent that closes the day on the
  time frame;
- every full hour while parked (the gateway's hourly wake-up);
- at every ignition transition: ACC wake-up (3 s before cranking, resting voltage), START
  (the cranking dip voltage and current), ON (2 s later, alternator charging) and OFF;
- every `drive_period_s` (default 60 s) while driving.
Each set stands for the DBC's cyclic messages (100 ms .. 10 s) over its interval: the
counter makes throughput exact regardless of the rate, the transitions make trips and
cranking exact, midnight makes day attribution exact. About 80-170 sets (0.6-1.2 k frames)
per simulated day.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import can
import numpy as np

from agent import signals as S
from agent.schema import cycles_used
from agent.signal_map import SignalMap, load_signal_map
from can_sim.battery import BOOT_S, CRANK_S, Battery, daily_usage
from can_sim.driving import DAY_S, WAKE_LEAD_S, Trip, day_rng, drive_abs_current, plan_day
from can_sim.frames import FrameEncoder
from can_sim.scenarios import Scenario, get_scenario
from can_sim.truth import REASONS, TruthRollup, faults_path, write_faults_json, write_truth_csv

_EPOCH = date(1970, 1, 1)
PROTECTED = {"midnight", "premidnight", "wake", "start", "on", "off"}   # never dropped (exactness)
ACC_LOAD_A = 5.0


def epoch_s(d: date) -> int:
    return int(datetime.combine(d, time(0), tzinfo=timezone.utc).timestamp())


@dataclass
class SimStats:
    frames: int = 0
    sets: int = 0
    dropped: int = 0            # good frames deliberately not sent (sensor-faults dropouts)
    stuck_sets: int = 0         # frame sets sent with stuck temperature/SoC
    injected: Counter = field(default_factory=Counter)   # bad frames by agent drop reason


class Simulator:
    """See the can_sim package docstring for the API contract."""

    def __init__(self, scenario: str | Scenario = "healthy", seed: int = 0, start: date | str = date(2024, 1, 1),
                 days: int = 30, *, battery_age_days: int = 0, battery_cycles: float | None = None,
                 replace_battery_day: int | None = None, drive_period_s: int = 60,
                 busy_frames: int | None = None, battery_id: int | None = None,
                 dbc: str | Path | None = None, signal_map: str | Path | SignalMap | None = None):
        self.scenario = get_scenario(scenario) if isinstance(scenario, str) else scenario
        self.seed = int(seed)
        self.start = date.fromisoformat(start) if isinstance(start, str) else start
        if days < 1:
            raise ValueError("days must be >= 1")
        if battery_age_days < 0:
            raise ValueError("battery_age_days must be >= 0")
        if drive_period_s < 1:
            raise ValueError("drive_period_s must be >= 1")
        if replace_battery_day is not None and not 0 < replace_battery_day < days:
            raise ValueError("replace_battery_day must be within the run (1 .. days-1)")
        self.days = int(days)
        self.battery_age_days = int(battery_age_days)
        self.battery_cycles = battery_cycles
        self.replace_battery_day = replace_battery_day
        self.drive_period_s = int(drive_period_s)
        self.busy_frames = busy_frames if busy_frames is not None else (
            self.scenario.busy.frames_per_set if self.scenario.busy else 0)
        self.battery_id = battery_id if battery_id is not None else 1_000_000 + (self.seed * 7919) % 9_000_000
        self.smap = signal_map if isinstance(signal_map, SignalMap) else load_signal_map(dbc, signal_map)
        self.encoder_ids = FrameEncoder(self.smap).known_ids
        self.stats: SimStats | None = None
        self._truth: list[dict] | None = None
        self._run: _Run | None = None

    # ---- public ------------------------------------------------------------------------
    @property
    def start_epoch(self) -> int:
        return epoch_s(self.start)

    @property
    def end_epoch(self) -> int:
        """Vehicle time of the last frame set (midnight after the last simulated day)."""
        return epoch_s(self.start + timedelta(days=self.days))

    def frames(self) -> Iterator[tuple[float, can.Message]]:
        """A fresh, deterministic stream of (vehicle time, frame); msg.timestamp == vehicle time.
        When exhausted, .truth() and .faults() describe exactly this stream."""
        run = self._run = _Run(self)
        self.stats = run.stats
        yield from run.iterate()
        self._truth = run.truth.rows

    def truth(self) -> list[dict]:
        """Ground-truth daily rows (agent.schema.DAILY_COLUMNS keys, unrounded numbers, None = empty)."""
        if self._truth is None:
            for _ in self.frames():
                pass
        return self._truth

    def faults(self) -> dict[str, int]:
        """Bad frames injected, by agent drop reason (unknown_id, bad_dlc, out_of_range, undecodable, no_time)."""
        self.truth()
        return self._injected()

    def _injected(self) -> dict[str, int]:
        return {k: int(self.stats.injected.get(k, 0)) for k in REASONS}

    def write_truth(self, path: str | Path, *, so_far: bool = False) -> tuple[Path, Path]:
        """Write the truth CSV and `<stem>.faults.json` next to it; returns both paths.
        so_far=True: of the stream consumed so far (an interrupted run): the closed days only."""
        if so_far and self._run is not None:
            rows, faults = self._run.truth.rows, self._injected()
        else:
            rows, faults = self.truth(), self.faults()
        write_truth_csv(path, rows)
        fp = faults_path(path)
        write_faults_json(fp, faults)
        return Path(path), fp


class _Run:
    """One pass over the simulated days (all mutable state lives here)."""

    def __init__(self, sim: Simulator):
        self.sim = sim
        sc = sim.scenario
        self.sc = sc
        self.enc = FrameEncoder(sim.smap)
        self.truth = TruthRollup()
        self.stats = SimStats()
        self.P = sim.drive_period_s
        install = sim.start - timedelta(days=sim.battery_age_days)
        if sim.battery_cycles is not None:
            cyc = float(sim.battery_cycles)
        elif sim.battery_age_days > 0:
            cyc = float(daily_usage(sc.profile, sc.design, install, sim.battery_age_days, sim.seed, sc.climate)["cycles"].sum())
        else:
            cyc = 0.0
        self.battery = Battery(sim.battery_id, sc.design, install, counter_ah=cyc * 2.0 * sc.design.capacity_ah,
                               soc=90.0, temp_c=sc.climate.ambient(sim.start, 0, 0.0))
        self.odometer = 8000.0 + 35.0 * sim.battery_age_days
        self.state = "OFF"
        self.speed = 0.0
        self.current = -sc.profile.quiescent_a
        self.voltage = self.battery.ocv()
        self.stuck: tuple[float, float] | None = None
        if self.sim.busy_frames:
            pool_rng = np.random.default_rng([sim.seed & 0xFFFFFFFF, 99])
            free = np.array([i for i in range(0x001, 0x7FF) if i not in self.enc.known_ids])
            self.busy_ids = [int(x) for x in pool_rng.choice(free, size=sc.busy.n_ids if sc.busy else 48, replace=False)]

    # ---- the day loop ------------------------------------------------------------------
    def iterate(self) -> Iterator[tuple[float, can.Message]]:
        sim = self.sim
        for k in range(sim.days + 1):
            d = sim.start + timedelta(days=k)
            self.day, self.day0 = d, epoch_s(d)
            self.rng = day_rng(sim.seed, d, 2)
            self.frng = day_rng(sim.seed, d, 3)
            self.brng = day_rng(sim.seed, d, 4)
            self.weather = self.sc.climate.daily_offset(day_rng(sim.seed, d, 1))
            if k > 0:
                self._advance(self.day0 - self.t, "park")
                yield from self._premidnight()
            else:
                self.t = self.day0
            if sim.replace_battery_day is not None and k == sim.replace_battery_day:
                self.battery = Battery(self.battery.battery_id + 1, self.sc.design, d, counter_ah=0.0,
                                       soc=98.0, temp_c=self.battery.temp_c)
            self._windows()
            yield from self._set(0, "midnight", None)
            if k == sim.days:
                return
            trips = plan_day(self.sc.profile, d, day_rng(sim.seed, d, 0))
            for sec, kind, trip in self._events(trips):
                self._advance(self.day0 + sec - self.t, kind, trip)
                yield from self._set(sec, kind, trip)

    def _events(self, trips: list[Trip]):
        ev: list[tuple[int, str, Trip | None]] = []
        spans = [(t.start_s - WAKE_LEAD_S, t.end_s) for t in trips]
        for h in range(1, 24):
            s = h * 3600
            if not any(a <= s <= b for a, b in spans):
                ev.append((s, "park", None))
        for t in trips:
            ev += [(t.start_s - WAKE_LEAD_S, "wake", t), (t.start_s, "start", t), (t.start_s + BOOT_S, "on", t)]
            s = t.start_s + BOOT_S + self.P
            while s < t.end_s:
                ev.append((s, "drive", t))
                s += self.P
            ev.append((t.end_s, "off", t))
        ev.sort(key=lambda e: e[0])
        return ev

    def _windows(self) -> None:
        """Today's sensor-fault windows (seconds of day), drawn from the faults stream."""
        self.dropout = self.stuckwin = None
        f = self.sc.faults
        if f is None:
            return
        r = self.frng
        if r.random() < f.dropout_window_prob:
            a = int(r.integers(3600, 20 * 3600))
            self.dropout = (a, a + int(r.integers(3600, 4 * 3600)))
        if r.random() < f.stuck_window_prob:
            a = int(r.integers(0, 18 * 3600))
            self.stuckwin = (a, a + int(r.integers(2 * 3600, 8 * 3600)))

    # ---- physics between sets ----------------------------------------------------------
    def _relax_temp(self, dt: float, target: float, tau_s: float) -> None:
        b = self.battery
        b.temp_c = target + (b.temp_c - target) * math.exp(-dt / tau_s)

    def _ambient(self) -> float:
        return self.sc.climate.ambient(self.day, self.t - self.day0, self.weather)

    def _advance(self, dt: float, kind: str, trip: Trip | None = None) -> None:
        b, prof, rng = self.battery, self.sc.profile, self.rng
        self.t += dt
        amb = self._ambient()
        if kind in ("park", "midnight", "wake", "premidnight"):
            b.park(dt, prof.quiescent_a)
            self._relax_temp(dt, amb, 2 * 3600.0)
            self.state, self.speed, self.current = "OFF", 0.0, -prof.quiescent_a
            self.voltage = b.ocv() + float(rng.normal(0.0, 0.004))
            if kind == "wake":
                self.state, self.current = "ACC", -(prof.quiescent_a + ACC_LOAD_A)
                self.voltage = b.ocv() - ACC_LOAD_A * b.resistance()
        elif kind == "start":
            b.park(dt, prof.quiescent_a + ACC_LOAD_A)
            self.state, self.current = "START", -b.crank_current()
            self.voltage = b.cranking_voltage(rng)
        elif kind == "on":
            b.crank()
            self.current = b.drive(max(dt - CRANK_S, 0.1), drive_abs_current(prof, amb), rng) or 0.0
            self.current = abs(self.current)          # alternator recharging right after the crank
            self.state, self.speed = "ON", 0.0
            self.voltage = b.charging_voltage(rng)
        else:   # drive / off: a driving interval ends here
            self.current = b.drive(dt, drive_abs_current(prof, amb), rng)
            self._relax_temp(dt, amb + 20.0, 1800.0)
            v = float(np.clip(trip.mean_speed_kmh * rng.gamma(6.0, 1.0 / 6.0), 0.0, 200.0))
            self.odometer += v * dt / 3600.0
            self.speed = v
            self.voltage = b.loaded_voltage(self.current, rng)
            if kind == "off":
                self.state, self.speed, self.current = "OFF", 0.0, -prof.quiescent_a
                self.voltage = b.ocv() + 0.12     # surface charge right after driving

    # ---- frame sets --------------------------------------------------------------------
    def _values(self, t: int) -> dict:
        b = self.battery
        temp, soc = b.temp_c, b.soc
        if self.stuck is not None:
            temp, soc = self.stuck
        return {
            S.CURRENT_TIME: t, S.BATTERY_ID: b.battery_id, S.RATED_CYCLES: b.design.rated_cycles,
            S.NOMINAL_CAPACITY: b.design.capacity_ah, S.INSTALL_DATE: (b.install_date - _EPOCH).days,
            S.SYSTEM_STATE: self.state, S.VOLTAGE: self.voltage, S.CURRENT: self.current,
            S.TEMPERATURE: temp, S.SOC: soc, S.THROUGHPUT: b.counter_ah,
            S.SPEED: self.speed, S.ODOMETER: self.odometer,
        }

    def _emit(self, items: list[tuple[can.Message, dict | None]], t0: float, span: float):
        step = min(0.001, span / max(len(items), 1))
        for i, (msg, view) in enumerate(items):
            ts = t0 + i * step
            msg.timestamp = ts
            if view is not None:
                self.truth.feed(view)
            self.stats.frames += 1
            yield ts, msg

    def _premidnight(self):
        plan = self.enc.plan_for.get(S.THROUGHPUT)
        if plan is None:
            return
        msg, view, _ = self.enc.encode(plan, self._values(self.day0))
        view = {S.THROUGHPUT: view[S.THROUGHPUT]}
        yield from self._emit([(msg, view)], self.day0 - 0.05, 0.01)

    def _set(self, sec: int, kind: str, trip):
        t = self.day0 + sec
        f, r = self.sc.faults, self.frng
        if f is not None:
            in_stuck = self.stuckwin is not None and self.stuckwin[0] <= sec <= self.stuckwin[1]
            if in_stuck and self.stuck is None:
                self.stuck = (self.battery.temp_c, self.battery.soc)
            elif not in_stuck:
                self.stuck = None
            if in_stuck:
                self.stats.stuck_sets += 1
        values = self._values(t)
        items: list[tuple[can.Message, dict | None]] = []
        encoded = []
        in_dropout = f is not None and self.dropout is not None and self.dropout[0] <= sec <= self.dropout[1]
        for plan in self.enc.plans:
            msg, view, raw = self.enc.encode(plan, values)
            encoded.append((plan, msg, raw))
            if f is not None and kind not in PROTECTED:
                ibs = S.VOLTAGE in plan.canonicals or S.THROUGHPUT in plan.canonicals
                if (in_dropout and ibs) or r.random() < f.drop_frame_prob:
                    self.stats.dropped += 1
                    continue
            items.append((msg, view))
        if f is not None:
            inj = self.stats.injected
            if r.random() < f.out_of_range_prob:
                cands = [e for e in encoded if e[0].oor]
                if cands:
                    plan, _, raw = cands[int(r.integers(len(cands)))]
                    items.append((self.enc.out_of_range(plan, raw, r), None))
                    inj["out_of_range"] += 1
            if r.random() < f.bad_dlc_prob:
                plan, msg, _ = encoded[int(r.integers(len(encoded)))]
                items.append((self.enc.bad_dlc(plan, bytes(msg.data), r), None))
                inj["bad_dlc"] += 1
            if r.random() < f.undecodable_prob:
                plan, _, _ = encoded[int(r.integers(len(encoded)))]
                items.append((self.enc.undecodable(plan), None))
                inj["undecodable"] += 1
        if self.sim.busy_frames:
            br = self.brng
            n = self.sim.busy_frames
            ids = br.integers(0, len(self.busy_ids), size=n)
            lens = br.integers(0, 9, size=n)
            payload = br.bytes(int(lens.sum()))
            o = 0
            for i in range(n):
                ln = int(lens[i])
                items.append((can.Message(arbitration_id=self.busy_ids[int(ids[i])], is_extended_id=False,
                                          data=payload[o:o + ln]), None))
                o += ln
            self.stats.injected["unknown_id"] += n
        self.stats.sets += 1
        yield from self._emit(items, float(t), 0.9)
