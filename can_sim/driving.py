"""How the virtual car is used: trips per day and the climate it lives in.

Pure numpy + stdlib (no CAN, no agent imports) so the battery-forecasting fleet generator
can reuse it. Every function takes an explicit `numpy.random.Generator`; `day_rng(seed, day)`
gives the per-day stream used by the simulator, so a day's plan depends only on (seed, date),
never on where a run started.

Rules the plans always satisfy (the simulator's exact day attribution relies on them):
- trip start/end are whole seconds of the UTC day, 00:05 <= wake-up, end <= 23:58 — a trip
  never spans midnight;
- trips are sorted and at least 10 minutes apart;
- a trip never starts (wake-up) exactly on a full hour, so the hourly parked frame set and
  an ignition transition never share a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np

DAY_S = 86400
WAKE_LEAD_S = 3          # ACC wake-up this many seconds before cranking (START)
EARLIEST_WAKE_S = 5 * 60
LATEST_END_S = DAY_S - 2 * 60
MIN_GAP_S = 10 * 60


@dataclass(frozen=True)
class Trip:
    start_s: int          # second of the UTC day the engine cranks (START)
    duration_s: int       # START ... ignition OFF
    mean_speed_kmh: float

    @property
    def end_s(self) -> int:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class UsageProfile:
    """A driver. Times are hours of the UTC day; durations are minutes (lognormal medians)."""
    name: str = "commuter"
    workday_prob: float = 0.92            # weekday with a commute (else holiday / home office)
    morning_departure_h: float = 7.4
    evening_departure_h: float = 17.2
    commute_median_min: float = 24.0
    commute_sigma: float = 0.30
    errand_prob_weekday: float = 0.30
    errand_median_min: float = 14.0
    weekend_trips_mean: float = 1.4       # Poisson mean, scaled by season
    weekend_median_min: float = 32.0
    weekend_sigma: float = 0.65
    summer_leisure_boost: float = 0.35    # + fraction of weekend trips at midsummer
    vacation_days: tuple[int, int] = (213, 226)   # day-of-year range parked away (inclusive); (0,-1)=none
    # Electrical behaviour while driving: mean |I| of the battery's micro-cycling (A).
    drive_abs_current_a: float = 32.0
    winter_load_boost: float = 0.45       # + fraction of |I| at the coldest time (heater, lights, seats)
    quiescent_a: float = 0.03             # parked draw (alarm, gateway, telematics)
    urban_speed_kmh: float = 42.0
    max_trip_min: float = 180.0


PROFILES = {
    "light": UsageProfile(name="light", workday_prob=0.6, commute_median_min=15.0, errand_prob_weekday=0.25,
                          weekend_trips_mean=1.0, drive_abs_current_a=26.0),
    "commuter": UsageProfile(),
    "heavy": UsageProfile(name="heavy", workday_prob=0.95, commute_median_min=38.0, commute_sigma=0.25,
                          errand_prob_weekday=0.55, errand_median_min=20.0, weekend_trips_mean=2.0,
                          weekend_median_min=40.0, vacation_days=(0, -1), drive_abs_current_a=38.0,
                          winter_load_boost=0.5, quiescent_a=0.04, urban_speed_kmh=48.0),
}


def day_rng(seed: int, day: date, stream: int = 0) -> np.random.Generator:
    """The random stream for one (seed, date, purpose). Independent of run start and length."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, stream, day.toordinal()])


def season(day: date) -> float:
    """+1 at midsummer (~Jul 20), -1 at midwinter (northern hemisphere)."""
    return math.cos(2.0 * math.pi * (day.timetuple().tm_yday - 201) / 365.25)


@dataclass(frozen=True)
class Climate:
    mean_c: float = 10.0
    seasonal_amp_c: float = 10.0
    daily_amp_c: float = 4.5

    def daily_offset(self, rng: np.random.Generator) -> float:
        """Weather of the day (draw once per day from that day's climate stream)."""
        return float(rng.normal(0.0, 3.0))

    def ambient(self, day: date, second: float, weather_c: float) -> float:
        diurnal = math.cos(2.0 * math.pi * (second / 3600.0 - 15.0) / 24.0)
        return self.mean_c + self.seasonal_amp_c * season(day) + self.daily_amp_c * diurnal + weather_c


def _lognormal_s(rng: np.random.Generator, median_min: float, sigma: float, lo_min: float, hi_min: float) -> int:
    m = float(np.clip(median_min * math.exp(sigma * rng.standard_normal()), lo_min, hi_min))
    return int(round(m * 60.0))


def _clock_s(rng: np.random.Generator, mean_h: float, sd_h: float) -> int:
    return int(round((mean_h + sd_h * rng.standard_normal()) * 3600.0))


def plan_day(profile: UsageProfile, day: date, rng: np.random.Generator) -> list[Trip]:
    """Trips of one day: weekday commute (+ errand), weekend leisure, summer boost, vacation."""
    doy = day.timetuple().tm_yday
    lo, hi = profile.vacation_days
    if lo <= doy <= hi:
        return []
    weekend = day.weekday() >= 5
    s = season(day)
    wanted: list[Trip] = []
    if not weekend:
        if rng.random() < profile.workday_prob:
            for dep_h in (profile.morning_departure_h, profile.evening_departure_h):
                wanted.append(Trip(_clock_s(rng, dep_h, 0.5),
                                   _lognormal_s(rng, profile.commute_median_min, profile.commute_sigma, 6, 120),
                                   profile.urban_speed_kmh * float(rng.uniform(0.9, 1.4))))
        if rng.random() < profile.errand_prob_weekday:
            wanted.append(Trip(_clock_s(rng, 19.5, 0.8),
                               _lognormal_s(rng, profile.errand_median_min, 0.5, 4, 60),
                               profile.urban_speed_kmh * float(rng.uniform(0.7, 1.0))))
    else:
        lam = profile.weekend_trips_mean * (1.0 + profile.summer_leisure_boost * s)
        for _ in range(int(rng.poisson(max(lam, 0.0)))):
            wanted.append(Trip(int(rng.uniform(8.5, 20.0) * 3600),
                               _lognormal_s(rng, profile.weekend_median_min, profile.weekend_sigma, 5, profile.max_trip_min),
                               profile.urban_speed_kmh * float(rng.uniform(0.8, 1.8))))
    return _fit(sorted(wanted, key=lambda t: t.start_s))


def _fit(trips: list[Trip]) -> list[Trip]:
    """Enforce the module rules (see docstring) by shifting/clipping/dropping trips."""
    out: list[Trip] = []
    earliest = EARLIEST_WAKE_S + WAKE_LEAD_S
    for t in trips:
        start = max(t.start_s, earliest)
        if (start - WAKE_LEAD_S) % 3600 == 0:
            start += 1
        end = min(start + t.duration_s, LATEST_END_S)
        if end - start < 120:
            continue
        out.append(Trip(start, end - start, t.mean_speed_kmh))
        earliest = end + MIN_GAP_S + WAKE_LEAD_S
    return out


def drive_abs_current(profile: UsageProfile, ambient_c: float) -> float:
    """Mean |I| (A) of the battery while driving: micro-cycling under electrical loads,
    higher when cold (heater blower, lights, seat/window heating)."""
    cold = float(np.clip((12.0 - ambient_c) / 20.0, 0.0, 1.0))
    return profile.drive_abs_current_a * (1.0 + profile.winter_load_boost * cold)
