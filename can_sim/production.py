"""A car on a production DBC whose bus sleeps when parked, for the vehicle-profile tests and
the replay benchmark: frames encoded with cantools from the profile's DBC (agent/data/vehicles),
no identity, time or throughput frames, and what the generator knows about every day.

    car = profile_car("vw_mqb", start_epoch, days=21, seed=4)
    for msg in car.frames(): ...           # msg.timestamp = the recording's time
    car.expected[day_number]               # Expected: trips, trip seconds, Ah (agent rule / physics), ...
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import can

from agent.signal_map import load_signal_map
from agent.vehicles import profile_paths


DAY = 86400


def encode(db, name: str, values: dict) -> can.Message:
    """One frame of message `name`: the given physical values, every other signal at its
    minimum (or 0), timestamp set by the caller."""
    msg = db.get_message_by_name(name)
    full = {}
    for s in msg.signals:
        if s.name in values:
            full[s.name] = values[s.name]
        else:
            lo = s.minimum if s.minimum is not None else 0
            full[s.name] = max(lo, 0) if (s.maximum is None or s.maximum >= 0) else lo
    data = msg.encode(full, strict=False)
    return can.Message(arbitration_id=msg.frame_id, is_extended_id=msg.is_extended_frame, data=data)


@dataclass
class Expected:
    """What the generator knows about one day: the agent's rules applied to its own frames
    (`trapezoid_ah`) and the physics while the bus was awake (`true_ah`)."""
    day: int
    trips: int = 0
    trip_s: float = 0.0
    trapezoid_ah: float = 0.0
    true_ah: float = 0.0
    min_crank: float | None = None
    resting: float | None = None
    cranked: bool = False


@dataclass
class SleepingBusCar:
    """Days of driving with a bus that sleeps between uses: each use = wake (ACC) 5 s, cranking,
    ON for the trip, OFF and 40 s awake, then no frames until the next use. Some days the car
    stays parked (the bus never wakes). Frames every `period` s while awake, timestamps exactly
    representable in a candump log (6 decimals).

    `tick(t, state, volts, amps)` -> frames of one period (the profile's encoder); the generator
    quantises through `volts_q` / `amps_q` exactly like the DBC does."""
    tick: object
    volts_q: object
    amps_q: object
    start: int
    days: int
    seed: int = 1
    period: float = 0.2
    crank: bool = True
    expected: dict = field(default_factory=dict)

    def frames(self):
        rng = random.Random(self.seed)
        state = "OFF"
        for d in range(self.days + 1):
            day0 = self.start + d * DAY
            dn = day0 // DAY
            e = self.expected.setdefault(dn, Expected(dn))
            if d == self.days:
                uses = [(7 * 3600.0, 0.0)]                  # a last wake-up closes the last day
            elif rng.random() < 0.2:
                uses = []                                   # parked all day: the bus never wakes
            else:
                n = rng.randint(1, 3)
                starts = sorted(rng.sample(range(6 * 60, 21 * 60, 10), n))
                uses = [(m * 60.0 + rng.randint(0, 59), rng.randint(5, 55) * 60.0) for m in starts]
                uses = [u for i, u in enumerate(uses) if i == 0 or u[0] > uses[i - 1][0] + uses[i - 1][1] + 300]
            for t_rel, dur in uses:
                state = yield from self._use(e, day0 + t_rel, dur, rng, state)

    def _use(self, e: Expected, t0: float, dur: float, rng, state):
        phases = [("ACC", 5.0)]
        if dur > 0:
            phases += ([("START", 1.2)] if self.crank else []) + [("ON", dur)]
        phases += [("OFF", 40.0)]
        k = 0
        t_on = None
        last = None                                  # (t, amps_q) of the previous current sample
        t_phase = t0
        for st, length in phases:
            n = int(round(length / self.period))
            for j in range(n):
                t = float(f"{t0 + k * self.period:.6f}")
                k += 1
                since = t - t_phase
                volts, amps = self._physics(st, since, rng)
                vq, aq = self.volts_q(volts), self.amps_q(amps)
                if st in ("ON", "START") and t_on is None:
                    t_on = t
                    e.trips += 1
                if st == "OFF" and t_on is not None:
                    e.trip_s += t - t_on
                    t_on = None
                if st == "START":
                    e.cranked = True
                    e.min_crank = vq if e.min_crank is None else min(e.min_crank, vq)
                if e.resting is None and not e.cranked and st in ("ACC", "OFF"):
                    e.resting = vq
                if last is not None:
                    e.trapezoid_ah += (abs(last[1]) + abs(aq)) * 0.5 * (t - last[0]) / 3600.0
                    e.true_ah += abs(amps) * (t - last[0]) / 3600.0
                last = (t, aq)
                for m in self.tick(t, st, volts, amps):
                    m.timestamp = t
                    yield m
            t_phase += n * self.period
            state = st
        return state

    @staticmethod
    def _physics(st: str, since: float, rng) -> tuple[float, float]:
        if st == "ACC":
            return 12.55 + rng.uniform(-0.05, 0.05), -7.0 + rng.uniform(-1.5, 1.5)
        if st == "START":
            return 9.6 + rng.uniform(-0.4, 0.4), -140.0 + rng.uniform(-20, 20)
        if st == "ON":
            return 14.1 + rng.uniform(-0.1, 0.1), 6.0 + 30.0 * math.exp(-since / 500.0) + 3 * math.sin(since / 7.0)
        return 12.4 + rng.uniform(-0.05, 0.05), -3.0 + rng.uniform(-1.0, 1.0)


def profile_car(profile: str, start: int, days: int, seed: int = 1, period: float = 0.2) -> SleepingBusCar:
    """A SleepingBusCar speaking a shipped profile's DBC the way its signal map reads it."""
    db = load_signal_map(*profile_paths(profile)).db
    if profile == "vw_mqb":
        qbit = iter(range(10**12))

        def tick(t, st, volts, amps):
            kl = {"ZAS_Kl_S": int(st != "OFF"), "ZAS_Kl_15": int(st in ("ON", "START")),
                  "ZAS_Kl_50": int(st == "START")}
            out = [encode(db, "Klemmen_Status_01", kl),
                   encode(db, "DC_Hybrid_01", {"DC_HYB_uAktLV": round(volts, 1), "DC_HYB_iAktLV": round(amps)})]
            if st == "ON":      # every 50th speed frame carries a set qualifier bit (not to be used)
                out.append(encode(db, "ESP_21", {"ESP_v_Signal": 50.0, "ESP_QBit_v_Signal": int(next(qbit) % 50 == 0)}))
            return out
        return SleepingBusCar(tick, lambda v: round(round(v, 1) * 10) * 0.1, lambda a: float(round(a)), start, days,
                              seed=seed, period=period)
    if profile == "bmw_e9x_e8x":
        def tick(t, st, volts, amps):
            return [encode(db, "TerminalStatus", {"IgnitionOff": int(st not in ("ON", "START")),
                                                  "AccOn": int(st == "ACC")}),
                    encode(db, "PowerBatteryVoltage", {"BatteryVoltage": round(volts, 3)}),
                    encode(db, "Speed", {"VehicleSpeed": 0.0})]
        return SleepingBusCar(tick, lambda v: round(v * 1000) * 0.001, lambda a: 0.0, start, days, seed=seed,
                              crank=False, period=period)
    raise KeyError(f"no generator for profile {profile!r}")
