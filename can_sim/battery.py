"""The 12 V lead-acid battery: state of charge, the IBS throughput counter and wear.

Pure numpy + stdlib; the one agent import is the cycle definition (agent.schema.cycles_used),
so "a cycle" means the same thing here, in the agent and in training.

Wear = lifetime cycles / rated cycles, where lifetime cycles = cycles_used(IBS counter):
the intelligent battery sensor's cumulative |I| dt counter is reset when the battery is
installed, so it *is* the battery's lifetime throughput. Wear raises the internal resistance
(deeper cranking dips) and lowers the resting (open-circuit) voltage — the two health
indicators the agent reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from agent.schema import cycles_used
from can_sim.driving import DAY_S, Climate, UsageProfile, day_rng, drive_abs_current, plan_day

CRANK_S = 1.5                # cranking duration (s) — the START phase
BOOT_S = 2                   # START -> ON (engine running) after this many seconds


@dataclass(frozen=True)
class BatteryDesign:
    """What the identity frame says plus the physics parameters of a new battery."""
    rated_cycles: int = 300
    capacity_ah: float = 70.0
    r0_ohm: float = 0.006            # internal resistance when new, 20 degC
    resistance_wear_gain: float = 1.2   # R = r0 * (1 + gain * wear)
    ocv_wear_drop_v: float = 0.35    # resting voltage loss at wear = 1
    self_discharge_pct_day: float = 0.10  # at 25 degC, new; doubles per +10 degC and with wear


@dataclass
class Battery:
    battery_id: int
    design: BatteryDesign
    install_date: date
    counter_ah: float = 0.0          # IBS cumulative throughput since installation (exact, unquantised)
    soc: float = 95.0                # %
    temp_c: float = 15.0

    # ---- health -------------------------------------------------------------------------
    @property
    def lifetime_cycles(self) -> float:
        return cycles_used(self.counter_ah, self.design.capacity_ah)

    @property
    def wear(self) -> float:
        return self.lifetime_cycles / float(self.design.rated_cycles)

    def ocv(self) -> float:
        """Open-circuit (resting) voltage: ~11.8 V empty .. 12.7 V full when new, lower with wear."""
        w = min(self.wear, 1.5)
        return 11.8 + 0.009 * self.soc - self.design.ocv_wear_drop_v * w ** 1.3 + 0.002 * (self.temp_c - 20.0)

    def resistance(self) -> float:
        cold = max(0.0, 20.0 - self.temp_c)
        return self.design.r0_ohm * (1.0 + self.design.resistance_wear_gain * min(self.wear, 1.5)) * (1.0 + 0.012 * cold)

    def crank_current(self) -> float:
        return 280.0 + 3.0 * max(0.0, 10.0 - self.temp_c)

    def cranking_voltage(self, rng: np.random.Generator) -> float:
        """Minimum voltage during the crank: OCV - I_crank * R (cold and wear make it deeper)."""
        return self.ocv() - self.crank_current() * self.resistance() + float(rng.normal(0.0, 0.05))

    def charging_voltage(self, rng: np.random.Generator) -> float:
        """Alternator regulation voltage (temperature compensated)."""
        v = 14.3 - 0.015 * (self.temp_c - 25.0)
        return float(np.clip(v, 13.6, 14.8)) + float(rng.normal(0.0, 0.03))

    def loaded_voltage(self, current_a: float, rng: np.random.Generator) -> float:
        """Voltage under a load current while driving (+ = charging)."""
        if current_a >= 0:
            return self.charging_voltage(rng)
        return self.ocv() + current_a * self.resistance() + float(rng.normal(0.0, 0.02))

    # ---- state changes -----------------------------------------------------------------
    def _move(self, abs_ah: float, net_ah: float) -> None:
        self.counter_ah += abs_ah
        self.soc = float(np.clip(self.soc + 100.0 * net_ah / self.design.capacity_ah, 5.0, 100.0))

    def park(self, dt_s: float, quiescent_a: float) -> None:
        """Parked: the quiescent draw passes the sensor; self-discharge does not (internal)."""
        h = dt_s / 3600.0
        sd = self.design.self_discharge_pct_day * (1.0 + self.wear) * 2.0 ** ((self.temp_c - 25.0) / 10.0) * h / 24.0
        self._move(quiescent_a * h, -quiescent_a * h)
        self.soc = max(5.0, self.soc - sd)

    def crank(self) -> float:
        """Cranking: a short high-current discharge. Returns the (negative) crank current."""
        i = self.crank_current()
        ah = i * CRANK_S / 3600.0
        self._move(ah, -ah)
        return -i

    def drive(self, dt_s: float, abs_current_a: float, rng: np.random.Generator) -> float:
        """Driving interval: the battery micro-cycles around the alternator set point (|I| averages
        abs_current_a) while the alternator recovers SoC. Returns a signed current sample."""
        h = dt_s / 3600.0
        m = abs_current_a * float(rng.gamma(4.0, 0.25))
        recover = (97.0 - self.soc) * (1.0 - math.exp(-h / 1.5))        # % of SoC regained
        net_ah = recover * self.design.capacity_ah / 100.0
        self._move(m * h, net_ah)
        p_charge = 0.55 + 0.3 * (1.0 - self.soc / 100.0)
        return m if rng.random() < p_charge else -m


def expected_day_throughput_ah(profile: UsageProfile, trips, ambient_c: float) -> float:
    """Expected IBS throughput of one day (Ah) — the daily-level model behind the simulator
    (same currents, without the per-interval noise). Used for pre-aged batteries and by
    fleet generators that want the usage model without CAN frames."""
    drive_s = sum(t.duration_s for t in trips)
    crank = len(trips) * (280.0 + 3.0 * max(0.0, 10.0 - ambient_c)) * CRANK_S / 3600.0
    return (drive_abs_current(profile, ambient_c) * drive_s / 3600.0
            + crank + profile.quiescent_a * (DAY_S - drive_s) / 3600.0)


def daily_usage(profile: UsageProfile, design: BatteryDesign, start: date, days: int, seed: int,
                climate: Climate | None = None) -> dict[str, np.ndarray]:
    """Daily-level usage series (no frames): trips, trip minutes, expected cycles per day.

    Uses the simulator's own per-day plans (same seed, same trips), so a fleet generator or
    a pre-aged battery agrees with what `trey-sim` would drive."""
    climate = climate or Climate()
    trips_n = np.zeros(days, dtype=np.int64)
    minutes = np.zeros(days)
    cycles = np.zeros(days)
    for k in range(days):
        d = start + timedelta(days=k)
        trips = plan_day(profile, d, day_rng(seed, d, 0))
        weather = climate.daily_offset(day_rng(seed, d, 1))
        amb = climate.ambient(d, 12 * 3600, weather)
        trips_n[k] = len(trips)
        minutes[k] = sum(t.duration_s for t in trips) / 60.0
        cycles[k] = cycles_used(expected_day_throughput_ah(profile, trips, amb), design.capacity_ah)
    return {"trips": trips_n, "trip_minutes": minutes, "cycles": cycles}
