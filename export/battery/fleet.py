"""Synthetic battery fleet: a fast statistical twin of the virtual car's battery usage.

A cycle is what agent.schema.cycles_used says (charge throughput / (2 x nominal capacity));
daily throughput comes from the same physical pieces the CAN simulator integrates: the
quiescent drain while parked (and its recharge), each start (accessories before cranking,
the crank, recharge) and the |current| while driving (loads vs alternator), which grows in
the cold. Per battery, the *expected* driving of a day is

    base x weekly[dow] x season(doy) x exp(trend x years) x regime(t)

and the day actually driven is drawn around it (idle days, Poisson trips, gamma minutes,
throughput noise). `regime` jumps at random times (new job, second car, a move). The
expected daily cycles (what the battery would use without day-to-day noise, regime changes
included) are written apart for evaluation only: a forecaster knowing them is the oracle.

Raw output reproduces the defects of the original data: 12-hourly rows (`YYYY-MM-DD
HH:MM:SS`) before 2015, duplicated rows, dropped rows and outages of several days.
Each battery runs from installation until it reaches its rated cycles (end of life) or
the end of the data; truth continues HORIZON days further so every origin can be scored.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from agent.forecast_features import HORIZON
from agent.schema import SEED_COLUMNS, cycles_used

RAW_FILE = "battery_history.csv"
TRUTH_FILE = "battery_truth.csv"
PARAMS_FILE = "fleet_params.json"
# Default fleet for generation and training: with fewer batteries the LSTM overfits their quirks.
FLEET_SIZE = 1600
TRUTH_COLUMNS = ("Date", "Battery_ID", "In_Service", "Daily_Cycles_Used", "Expected_Daily_Cycles",
                 "Lifetime_Cycles_Used", "Battery_Rated_Cycles")

FIRST_INSTALL = dt.date(2012, 1, 1)
LAST_INSTALL = dt.date(2018, 6, 30)
DATA_END = dt.date(2020, 12, 31)
HALF_DAY_UNTIL = dt.date(2015, 1, 1)     # 12-hourly rows before this date (as the original)
RATED_CHOICES = (150, 175, 200, 200, 200, 225, 250, 300)
CAPACITY_CHOICES = (60.0, 70.0, 70.0, 80.0, 95.0)
WEEKLY = {   # Mon..Sun driving multipliers
    "commuter": (1.12, 1.10, 1.10, 1.12, 1.15, 0.75, 0.56),
    "leisure": (0.85, 0.85, 0.85, 0.90, 1.05, 1.30, 1.20),
    "flat": (1.0,) * 7,
}


@dataclass
class BatteryParams:
    battery_id: int
    install: str
    rated_cycles: int
    capacity_ah: float
    base_minutes: float          # expected daily driving minutes at multiplier 1
    base_trips: float
    weekly_profile: str
    idle_p: float                # probability the car is not used on a given day
    drive_rate_ah_min: float     # mean |I| while driving, Ah per minute
    start_ah: float              # per start: accessories + crank (discharge) ...
    quiescent_a: float           # parked drain
    cold_amp: float              # winter increase of the driving throughput
    cold_peak_doy: float
    summer_dip: float            # holiday dip in driving around early August
    trend_per_year: float        # log-slope of driving
    regime_days: list            # day offsets of usage changes
    regime_factors: list         # multiplier after each change (cumulative)


def _draw_params(rng: np.random.Generator, bid: int) -> BatteryParams:
    span = (LAST_INSTALL - FIRST_INSTALL).days
    install = FIRST_INSTALL + dt.timedelta(days=int(rng.integers(0, span)))
    life_days = (DATA_END - install).days + HORIZON + 1
    n_changes = rng.poisson(0.5 * life_days / 365.25)
    days = sorted(int(d) for d in rng.integers(30, life_days, n_changes))
    factors = list(np.cumprod(np.exp(rng.normal(0.0, 0.35, n_changes))))
    profile = rng.choice(list(WEEKLY), p=[0.55, 0.25, 0.20])
    return BatteryParams(
        battery_id=bid, install=install.isoformat(),
        rated_cycles=int(rng.choice(RATED_CHOICES)),
        capacity_ah=float(rng.choice(CAPACITY_CHOICES)),
        base_minutes=float(np.clip(rng.lognormal(np.log(45), 0.5), 8, 200)),
        base_trips=float(np.clip(rng.lognormal(np.log(2.6), 0.35), 1.0, 8.0)),
        weekly_profile=str(profile),
        idle_p=float(rng.uniform(0.02, 0.15)),
        drive_rate_ah_min=float(rng.uniform(0.20, 0.40)),
        start_ah=float(rng.uniform(0.25, 0.6)),
        quiescent_a=float(rng.uniform(0.015, 0.05)),
        cold_amp=float(rng.uniform(0.05, 0.30)),
        cold_peak_doy=float(rng.normal(20, 12)),
        summer_dip=float(rng.uniform(0.0, 0.35) if profile == "commuter" else rng.uniform(0.0, 0.1)),
        trend_per_year=float(rng.normal(0.0, 0.15)),
        regime_days=days, regime_factors=[float(f) for f in factors])


def _simulate(p: BatteryParams, rng: np.random.Generator) -> dict:
    """Daily truth from install to end of life / data end, plus HORIZON days."""
    install = dt.date.fromisoformat(p.install)
    n = (DATA_END - install).days + HORIZON + 1
    t = np.arange(n)
    ordinals = install.toordinal() + t
    dow = (ordinals - 1) % 7
    doy = np.array([dt.date.fromordinal(int(o)).timetuple().tm_yday for o in ordinals], float)
    weekly = np.asarray(WEEKLY[p.weekly_profile])[dow]
    holiday = 1.0 - p.summer_dip * np.exp(-0.5 * ((doy - 218.0) / 12.0) ** 2)
    regime = np.ones(n)
    for d, f in zip(p.regime_days, p.regime_factors):
        regime[d:] = f
    mult = weekly * holiday * np.exp(p.trend_per_year * t / 365.25) * regime
    cold = 1.0 + p.cold_amp * np.cos(2 * np.pi * (doy - p.cold_peak_doy) / 365.25)
    exp_minutes = np.minimum(p.base_minutes * mult, 600.0)
    exp_trips = p.base_trips * np.sqrt(mult)
    # expected throughput (Ah): parked drain + its recharge, starts, driving in the cold
    parked_h = 24.0 - exp_minutes / 60.0
    exp_ah = 2 * p.quiescent_a * parked_h + 2 * p.start_ah * exp_trips + p.drive_rate_ah_min * cold * exp_minutes
    expected = cycles_used(exp_ah, p.capacity_ah)
    # the day actually driven: idle days, then trips and minutes around the expectation
    used = rng.random(n) >= p.idle_p
    lam = np.maximum(exp_trips / (1 - p.idle_p) - 1.0, 0.0)
    trips = np.where(used, 1 + rng.poisson(lam), 0)
    shape = 2.5
    minutes = np.where(used, rng.gamma(shape, exp_minutes / (1 - p.idle_p) / shape), 0.0)
    minutes = np.minimum(minutes, 900.0)
    noise = rng.lognormal(-0.5 * 0.12 ** 2, 0.12, n)        # mean 1: sensor + load variation
    ah = (2 * p.quiescent_a * (24.0 - minutes / 60.0) + 2 * p.start_ah * trips
          + p.drive_rate_ah_min * cold * minutes) * noise
    cycles = cycles_used(ah, p.capacity_ah)
    lifetime = np.cumsum(cycles)
    reached = np.flatnonzero(lifetime >= p.rated_cycles)
    data_end_idx = (DATA_END - install).days
    last = min(int(reached[0]) if len(reached) else n, data_end_idx)   # last day in service
    keep = min(last + HORIZON + 1, n)
    return {"ordinals": ordinals[:keep], "trips": trips[:keep], "minutes": minutes[:keep],
            "cycles": cycles[:keep], "expected": expected[:keep], "lifetime": lifetime[:keep],
            "last": last, "eol": bool(len(reached) and reached[0] <= data_end_idx)}


def _fmt(x: float, nd: int) -> str:
    return f"{x:.{nd}f}"


def _raw_rows(p: BatteryParams, sim: dict, rng: np.random.Generator) -> list[list[str]]:
    """Seed-schema rows with the original defects."""
    install = dt.date.fromisoformat(p.install)
    rows: list[list[str]] = []
    life = 0.0
    for i in range(sim["last"] + 1):
        day = dt.date.fromordinal(int(sim["ordinals"][i]))
        age = (day - install).days
        c, m, k = float(sim["cycles"][i]), float(sim["minutes"][i]), int(sim["trips"][i])
        if day < HALF_DAY_UNTIL:
            # two 12-hourly rows; the parked drain splits evenly, driving by a random share
            share = rng.beta(2, 2) if k else 0.5
            k1 = int(rng.binomial(k, share)) if k else 0
            base = cycles_used(2 * p.quiescent_a * 12.0, p.capacity_ah)
            drive = max(c - 2 * base, 0.0)
            c1 = min(base + share * drive, c)
            for stamp, kk, mm, cc in ((" 00:00:00", k1, m * share, c1), (" 12:00:00", k - k1, m * (1 - share), c - c1)):
                life += cc
                rows.append([day.isoformat() + stamp, str(p.battery_id), str(age), str(kk),
                             _fmt(mm, 1), _fmt(cc, 6), _fmt(life, 6), str(p.rated_cycles)])
        else:
            life += c
            rows.append([day.isoformat(), str(p.battery_id), str(age), str(k), _fmt(m, 1),
                         _fmt(c, 6), _fmt(life, 6), str(p.rated_cycles)])
    # defects: outages (consecutive days lost), random lost rows, duplicated rows
    n = len(rows)
    drop = rng.random(n) < 0.02
    for _ in range(rng.poisson(n / 700)):
        start = int(rng.integers(1, max(2, n - 12)))
        drop[start:start + int(rng.integers(2, 11))] = True
    drop[0] = drop[-1] = False          # keep install day and the end-of-life day
    out: list[list[str]] = []
    dup = rng.random(n) < 0.015
    for i in range(n):
        if drop[i]:
            continue
        out.append(rows[i])
        if dup[i]:
            out.append(list(rows[i]))
    return out


def generate_fleet(n_batteries: int, seed: int, out_dir: str | Path) -> dict:
    """Write RAW_FILE (defects), TRUTH_FILE (evaluation only) and PARAMS_FILE into out_dir.
    Same seed, same bytes."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    params, n_raw, n_eol = [], 0, 0
    with open(out / RAW_FILE, "w", newline="") as fr, open(out / TRUTH_FILE, "w", newline="") as ft:
        raw, truth = csv.writer(fr), csv.writer(ft)
        raw.writerow(SEED_COLUMNS)
        truth.writerow(TRUTH_COLUMNS)
        for i in range(n_batteries):
            brng = np.random.default_rng([seed, i])
            p = _draw_params(rng, 100001 + i)
            sim = _simulate(p, brng)
            rows = _raw_rows(p, sim, brng)
            raw.writerows(rows)
            n_raw += len(rows)
            n_eol += sim["eol"]
            for j in range(len(sim["ordinals"])):
                truth.writerow([dt.date.fromordinal(int(sim["ordinals"][j])).isoformat(), p.battery_id,
                                int(j <= sim["last"]), _fmt(sim["cycles"][j], 6), _fmt(sim["expected"][j], 6),
                                _fmt(sim["lifetime"][j], 6), p.rated_cycles])
            params.append(asdict(p) | {"reached_end_of_life": sim["eol"], "days_in_service": sim["last"] + 1})
    summary = {"seed": seed, "batteries": n_batteries, "raw_rows": n_raw, "reached_end_of_life": n_eol,
               "files": [RAW_FILE, TRUTH_FILE, PARAMS_FILE]}
    (out / PARAMS_FILE).write_text(json.dumps({"summary": summary, "batteries": params}, indent=1))
    return summary


def load_truth(path: str | Path) -> dict[str, dict]:
    """TRUTH_FILE -> {battery_id: {"ordinal0", "cycles", "expected", "lifetime", "in_service", "rated"}}."""
    acc: dict[str, dict[str, list]] = {}
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            a = acc.setdefault(r["Battery_ID"], {"dates": [], "cycles": [], "expected": [], "lifetime": [],
                                                 "in_service": [], "rated": float(r["Battery_Rated_Cycles"])})
            a["dates"].append(r["Date"])
            a["cycles"].append(float(r["Daily_Cycles_Used"]))
            a["expected"].append(float(r["Expected_Daily_Cycles"]))
            a["lifetime"].append(float(r["Lifetime_Cycles_Used"]))
            a["in_service"].append(r["In_Service"] == "1")
    out = {}
    for bid, a in acc.items():
        out[bid] = {"ordinal0": dt.date.fromisoformat(a["dates"][0]).toordinal(),
                    "cycles": np.array(a["cycles"]), "expected": np.array(a["expected"]),
                    "lifetime": np.array(a["lifetime"]), "in_service": np.array(a["in_service"]),
                    "rated": a["rated"]}
    return out
