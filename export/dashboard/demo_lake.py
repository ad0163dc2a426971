"""A seeded, populated lake in the layout of docs/lake.md, for `trey-export dashboard --demo`,
the dashboard tests and bench/bench_dashboard.py.

It stands in for what the fleet and the Spark jobs would have written (ingest + compaction +
scoring), day by day over `days` days ending on `end`:

  daily       one row per vehicle per day it reported (2 % of days lost, some cars stop
              reporting, a few join late). Usage = the battery fleet's statistical twin
              (export/battery/fleet.py: per-driver parameters from its `_draw_params`, the same
              throughput pieces -- parked drain, starts, driving in the cold -- and
              agent.schema.cycles_used), vectorised across vehicles. A battery that reaches
              its rated cycles is replaced a few days to weeks later (new Battery_ID).
  alerts      what the car's daemon raises (agent/daemon.py, agent/components.py): a battery
              alert refreshed every day while the car's own forecast says <= 30 days, some
              acknowledged by the driver, cleared when the battery is replaced; compliance
              alerts for non-compliant components, some cleared when the part is replaced.
  status      the agent's status payload (agent.topics.status_payload: outbox counters,
              downlink_rejected, models per slot) about once a week per car, the last will
              (offline) of cars that stopped; a model rollout 1.0.0 -> 1.1.0 per slot.
  forecasts   a weekly fleet scoring run in the fields of `trey-agent forecast`. The values
              are SYNTHETIC (the usage model's expected cycles x a per-model-version error,
              1.1.0 better than 1.0.0, both scored during a shadow period), not the ONNX model:
              the real ones come from `trey-export score battery`.
  compliance  one scoring run per vehicle's spec document (model 1.0.0, no per-attribute
              state columns -- they stay null as in older data) and a fleet re-score with
              1.1.0 that fills year_state/material_state/condition_state. Facts come from
              export/compliance/corpus.NoteGenerator; the regulation is label_of's.

Same seed and arguments, same tables. Written with pyarrow, one file per table per date.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from agent.forecast_features import HORIZON
from agent.schema import DAILY_COLUMNS, cycles_used
from export.battery.fleet import CAPACITY_CHOICES, RATED_CHOICES, WEEKLY, _draw_params
from export.compliance.corpus import BAD_CONDITIONS, BAD_MATERIALS, CUTOFF, NoteGenerator
from export.compliance.parts import PARTS

END = dt.date(2026, 11, 29)
UTC = dt.timezone.utc
TS = pa.timestamp("us", tz="UTC")
BATTERY_MODELS = ("battery-forecaster@1.0.0", "battery-forecaster@1.1.0")
COMPLIANCE_MODELS = ("compliance@1.0.0", "compliance@1.1.0")
SCORE_EVERY = 7            # days between fleet battery scoring runs
STATUS_P = 1 / 7           # chance a reporting car sends a status message that day
_PROFILES = list(WEEKLY)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _ids(rng, n: int) -> pa.Array:
    """n random 32-hex msg_ids (vectorised: 15 M of them must not take minutes)."""
    b = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16)
    out = np.empty((n, 32), np.uint8)
    out[:, 0::2], out[:, 1::2] = _HEX[b >> 4], _HEX[b & 15]
    return pa.array(out.view("S32").ravel()).cast(pa.string())


def _ts(d: dt.date, seconds) -> np.ndarray:
    base = np.datetime64(d.isoformat(), "us")
    return base + (np.asarray(seconds, float) * 1e6).astype("timedelta64[us]")


def _tsarr(values) -> pa.Array:
    """np.datetime64 values (None = null) -> timestamp[us, UTC]."""
    arr = np.array([np.datetime64("NaT") if v is None else v for v in values], "datetime64[us]")
    return pa.array(arr, TS, from_pandas=True)


def _iso(t: np.datetime64) -> str:
    return str(np.datetime64(t, "s")) + "Z"


def _write(root: Path, table: str, d: str, tab: pa.Table) -> None:
    part = root / table / f"date={d}"
    part.mkdir(parents=True, exist_ok=True)
    pq.write_table(tab, part / "part-00000.parquet", compression="zstd")


class _Fleet:
    """Per-vehicle state, vectorised; one call of `day()` per simulated day."""

    def __init__(self, n: int, days: int, end: dt.date, rng):
        self.n, self.days, self.end, self.rng = n, days, end, rng
        self.start = end - dt.timedelta(days=days - 1)
        ps = [_draw_params(rng, 100001 + i) for i in range(n)]
        g = lambda k: np.array([getattr(p, k) for p in ps], float)   # noqa: E731
        self.base_minutes, self.base_trips, self.idle_p = g("base_minutes"), g("base_trips"), g("idle_p")
        self.drive_rate, self.start_ah, self.quiescent = g("drive_rate_ah_min"), g("start_ah"), g("quiescent_a")
        self.cold_amp, self.cold_peak, self.summer_dip = g("cold_amp"), g("cold_peak_doy"), g("summer_dip")
        self.trend = g("trend_per_year")
        self.weekly = np.array([WEEKLY[p.weekly_profile] for p in ps], float)      # [n, 7]
        # usage changes inside the window (new job, second car, a move)
        self.regime_day = rng.integers(30, days + HORIZON + 60, (n, 2))
        self.regime_f = np.exp(rng.normal(0, 0.3, (n, 2))) * (rng.random((n, 2)) < 0.4) + \
            (rng.random((n, 2)) >= 0.4) * 1.0
        self.ambient_off = rng.normal(0, 5, n)
        # reporting: most cars report to the end, some stop (a few of them in the last days), some join late
        self.first = np.where(rng.random(n) < 0.04, rng.integers(0, days - 30, n), 0)
        stop = rng.random(n)
        self.last = np.where(stop < 0.03, rng.integers(days // 4, days, n),
                             np.where(stop < 0.045, days - 1 - rng.integers(1, 7, n), days - 1))
        self.last = np.maximum(self.last, self.first + 20).clip(max=days - 1)
        self.n_batt = np.zeros(n, int)            # batteries fitted so far (for Battery_ID)
        self.rated = rng.choice(RATED_CHOICES, n).astype(float)
        self.cap = rng.choice(CAPACITY_CHOICES, n).astype(float)
        rate0 = self._expected(0) * rng.lognormal(0, 0.1, n)
        age0 = rng.integers(30, 6 * 365, n)
        self.lifetime = np.minimum(age0 * rate0, self.rated * rng.uniform(0.3, 0.97, n))
        self.install = np.array([self.start.toordinal()] * n) - age0
        self.eol_at = np.full(n, -1)              # day the battery reached its rated cycles
        self.replace_at = np.full(n, -1)
        self.ewma = rate0.copy()                  # the car's recent daily cycles (28-day EWMA)

    def battery_ids(self, idx=None) -> list[str]:
        idx = np.arange(self.n) if idx is None else idx
        return [f"B{i + 1:06d}-{k + 1}" for i, k in zip(idx, self.n_batt[idx])]

    def _mult(self, t, doy, dow, regime_t=None):
        """Driving multiplier [n, len(t)]; regime_t: evaluate the usage regime at that day
        (what a forecaster knows today) instead of at each t."""
        t = np.asarray(t)
        hol = 1.0 - self.summer_dip[:, None] * np.exp(-0.5 * ((doy - 218.0) / 12.0) ** 2)
        rt = t if regime_t is None else np.full_like(t, regime_t)
        reg = np.ones((self.n, t.size))
        for j in range(2):
            reg *= np.where(rt[None, :] >= self.regime_day[:, j:j + 1], self.regime_f[:, j:j + 1], 1.0)
        return self.weekly[:, dow] * hol * np.exp(self.trend[:, None] * t[None, :] / 365.25) * reg

    def _cold(self, doy):
        return 1.0 + self.cold_amp[:, None] * np.cos(2 * np.pi * (doy - self.cold_peak[:, None]) / 365.25)

    def _calendar(self, t):
        t = np.atleast_1d(t)
        dates = [self.start + dt.timedelta(days=int(x)) for x in t]
        return (t, np.array([d.timetuple().tm_yday for d in dates], float),
                np.array([d.weekday() for d in dates]))

    def _expected(self, t, regime_at=None):
        """Expected daily cycles [n] (scalar t) or [n, len(t)]: the no-noise usage."""
        tt, doy, dow = self._calendar(t)
        mult = self._mult(tt, doy, dow, regime_at)
        em = np.minimum(self.base_minutes[:, None] * mult, 600.0)
        et = self.base_trips[:, None] * np.sqrt(mult)
        ah = (2 * self.quiescent[:, None] * (24.0 - em / 60.0) + 2 * self.start_ah[:, None] * et
              + self.drive_rate[:, None] * self._cold(doy) * em)
        out = cycles_used(ah, self.cap[:, None])
        return out[:, 0] if np.ndim(t) == 0 else out

    def day(self, t: int) -> dict:
        rng, n = self.rng, self.n
        d = self.start + dt.timedelta(days=t)
        # replacement first: the workshop fits a new battery that morning
        rep = np.flatnonzero(self.replace_at == t)
        replaced_ids = self.battery_ids(rep)
        if len(rep):
            self.n_batt[rep] += 1
            self.lifetime[rep] = 0.0
            self.rated[rep] = rng.choice(RATED_CHOICES, len(rep))
            self.cap[rep] = rng.choice(CAPACITY_CHOICES, len(rep))
            self.install[rep] = d.toordinal()
            self.eol_at[rep] = self.replace_at[rep] = -1
        tt, doy, dow = self._calendar(t)
        mult = self._mult(tt, doy, dow)[:, 0]
        cold = self._cold(doy)[:, 0]
        em = np.minimum(self.base_minutes * mult, 600.0)
        et = self.base_trips * np.sqrt(mult)
        used = rng.random(n) >= self.idle_p
        lam = np.maximum(et / (1 - self.idle_p) - 1.0, 0.0)
        trips = np.where(used, 1 + rng.poisson(lam), 0)
        minutes = np.where(used, np.minimum(rng.gamma(2.5, em / (1 - self.idle_p) / 2.5), 900.0), 0.0)
        noise = rng.lognormal(-0.5 * 0.12 ** 2, 0.12, n)
        ah = (2 * self.quiescent * (24.0 - minutes / 60.0) + 2 * self.start_ah * trips
              + self.drive_rate * cold * minutes) * noise
        cycles = cycles_used(ah, self.cap)
        self.lifetime += cycles
        self.ewma += (cycles - self.ewma) / 28.0
        hit = (self.lifetime >= self.rated) & (self.eol_at < 0)
        self.eol_at[hit] = t
        self.replace_at[hit] = t + rng.integers(2, 30, hit.sum())
        active = (t >= self.first) & (t <= self.last)
        reported = active & (rng.random(n) >= 0.02)
        ambient = 10 + 11 * np.cos(2 * np.pi * (doy[0] - 200) / 365.25) + self.ambient_off
        wear = np.clip(self.lifetime / self.rated, 0, 1.3)
        tmin = ambient - rng.uniform(2, 7, n)
        tmax = ambient + np.where(trips > 0, rng.uniform(6, 18, n), rng.uniform(1, 5, n))
        rest = 12.68 - 0.4 * wear + 0.004 * (ambient - 20) + rng.normal(0, 0.03, n)
        crank = np.where(trips > 0, 10.4 - 1.2 * wear + 0.015 * tmin + rng.normal(0, 0.12, n), np.nan)
        return {"date": d, "t": t, "reported": reported, "active": active, "trips": trips, "minutes": minutes,
                "cycles": cycles, "tmin": tmin, "tmax": tmax, "rest": rest, "crank": crank,
                "replaced": rep, "replaced_ids": replaced_ids}


def _daily_table(f: _Fleet, s: dict, vids: pa.Array, rng) -> pa.Table:
    idx = np.flatnonzero(s["reported"])
    d = s["date"]
    known = {
        "Date": pa.array(np.full(len(idx), np.datetime64(d.isoformat(), "D"))),
        "Battery_ID": pa.array(f.battery_ids(idx), pa.string()),
        "Battery_Age_Days": pa.array(d.toordinal() - f.install[idx], pa.int64()),
        "Number_Of_Trips": pa.array(s["trips"][idx], pa.int64()),
        "Daily_Trip_Duration": pa.array(np.round(s["minutes"][idx], 1)),
        "Daily_Cycles_Used": pa.array(np.round(s["cycles"][idx], 6)),
        "Lifetime_Cycles_Used": pa.array(np.round(f.lifetime[idx], 6)),
        "Battery_Rated_Cycles": pa.array(f.rated[idx]),
        "Min_Cranking_Voltage": pa.array(np.round(s["crank"][idx], 3), from_pandas=True),
        "Resting_Voltage": pa.array(np.round(s["rest"][idx], 3)),
        "Min_Temperature": pa.array(np.round(s["tmin"][idx], 1)),
        "Max_Temperature": pa.array(np.round(s["tmax"][idx], 1)),
    }
    cols = {c: known.get(c, pa.nulls(len(idx), pa.string())) for c in DAILY_COLUMNS}
    cols["vehicle_id"] = vids.take(pa.array(idx))
    cols["msg_id"] = _ids(rng, len(idx))
    # uploaded after the day closes: most within hours, never later than the next evening
    late = np.minimum(rng.exponential(2 * 3600, len(idx)), 20 * 3600) + rng.uniform(300, 1800, len(idx))
    cols["received_at"] = pa.array(_ts(d + dt.timedelta(days=1), late), TS)
    return pa.table(cols)


class _Alerts:
    """The car's alert lifecycle (agent/alerts.py) for every vehicle: rows in alerts-table shape."""

    def __init__(self, n: int, rng):
        self.rng = rng
        self.next_id = np.ones(n, int)
        self.by_key: dict[tuple[int, str], dict] = {}
        self.rows: list[dict] = []

    def _emit(self, v, vid, a, change, at):
        a["revision"] += 1
        a["updated"] = at
        self.rows.append({"vehicle_id": vid, "change": change, "alert_id": a["id"], **{
            k: a[k] for k in ("key", "kind", "severity", "state", "title", "message", "created", "updated",
                              "acknowledged", "acknowledged_by", "cleared", "vehicle_date",
                              "raised_vehicle_date", "revision")}, "explanation": json.dumps(a["explanation"]),
            "received_at": at + np.timedelta64(int(self.rng.uniform(1, 600) * 1e6), "us")})

    def raise_or_update(self, v, vid, key, kind, severity, title, message, expl, vday, at):
        a = self.by_key.get((v, key))
        if a is None:
            a = {"id": int(self.next_id[v]), "key": key, "kind": kind, "created": at, "revision": 0,
                 "state": "cleared"}
            self.next_id[v] += 1
            self.by_key[(v, key)] = a
        content = (severity, title, message)
        if a["state"] == "cleared":
            a.update(state="raised", acknowledged=None, acknowledged_by=None, cleared=None,
                     raised_vehicle_date=vday)
            change = "raised"
        elif a.get("content") == content:
            return None
        else:
            a["state"] = "acknowledged" if a["state"] == "acknowledged" else "updated"
            change = "updated"
        a.update(severity=severity, title=title, message=message, explanation=expl, vehicle_date=vday,
                 content=content)
        self._emit(v, vid, a, change, at)
        return a

    def acknowledge(self, v, vid, key, at, by="driver"):
        a = self.by_key.get((v, key))
        if a is None or a["state"] in ("cleared", "acknowledged"):
            return
        a.update(state="acknowledged", acknowledged=at, acknowledged_by=by)
        self._emit(v, vid, a, "acknowledged", at)

    def clear(self, v, vid, key, vday, at):
        a = self.by_key.get((v, key))
        if a is None or a["state"] == "cleared":
            return
        a.update(state="cleared", cleared=at, vehicle_date=vday)
        self._emit(v, vid, a, "cleared", at)

    def table(self) -> pa.Table:
        rows = self.rows
        ids = _ids(self.rng, len(rows))
        ts = lambda k: _tsarr([r[k] for r in rows])   # noqa: E731
        day = lambda k: pa.array([None if r[k] is None else dt.date.fromisoformat(r[k]) for r in rows], pa.date32())  # noqa: E731
        s = lambda k: pa.array([r[k] for r in rows], pa.string())   # noqa: E731
        return pa.table({
            "msg_id": ids, "vehicle_id": s("vehicle_id"), "change": s("change"),
            "alert_id": pa.array([r["alert_id"] for r in rows], pa.int64()),
            "key": s("key"), "kind": s("kind"), "severity": s("severity"), "state": s("state"),
            "title": s("title"), "message": s("message"),
            "created": ts("created"), "updated": ts("updated"), "acknowledged": ts("acknowledged"),
            "cleared": ts("cleared"), "acknowledged_by": s("acknowledged_by"),
            "vehicle_date": day("vehicle_date"), "raised_vehicle_date": day("raised_vehicle_date"),
            "revision": pa.array([r["revision"] for r in rows], pa.int64()),
            "explanation": s("explanation"), "received_at": ts("received_at")})


def _battery_alerts(f: _Fleet, s: dict, alerts: _Alerts, vids: list[str]) -> None:
    """The car's daily battery rule on a closed day (agent/daemon.py _apply_forecast)."""
    d, rng = s["date"], f.rng
    at0 = np.datetime64((d + dt.timedelta(days=1)).isoformat(), "us")
    vday = d.isoformat()
    for v, old in zip(s["replaced"], s["replaced_ids"]):       # a new battery clears the old one's alert
        alerts.clear(v, vids[v], f"battery:{old}", vday, at0 + np.timedelta64(300, "s"))
    remaining = f.rated - f.lifetime
    n_days = np.where(remaining <= 0, 0, np.ceil(remaining / np.maximum(f.ewma, 1e-6)))
    for v in np.flatnonzero(s["reported"] & (n_days <= 30)):
        bid = f.battery_ids(np.array([v]))[0]
        n = int(n_days[v])
        at = at0 + np.timedelta64(int(rng.uniform(60, 1800)), "s")
        expl = {"battery_id": bid, "as_of": vday, "lifetime_cycles": round(float(f.lifetime[v]), 4),
                "rated_cycles": float(f.rated[v]), "days_to_rated": n,
                "projected_lifetime_cycles_30d": round(float(f.lifetime[v] + 30 * f.ewma[v]), 4),
                "recent_mean_daily_cycles": round(float(f.ewma[v]), 5), "model": BATTERY_MODELS[0],
                "summary": f"Last 28 days: {f.ewma[v]:.3f} cycles/day. {f.lifetime[v]:.1f} of "
                           f"{f.rated[v]:.0f} rated cycles used."}
        msg = (f"Battery expected to reach end of life in about {n} day{'s' if n != 1 else ''} — "
               "schedule a service appointment") if n > 0 else \
            "Battery has reached the end of its rated life — schedule a service appointment"
        a = alerts.raise_or_update(v, vids[v], f"battery:{bid}", "battery", "critical" if n <= 7 else "warning",
                                   "Battery service needed", msg, expl, vday, at)
        if a is not None and a["state"] == "raised" and rng.random() < 0.55:
            a["_ack_on"] = s["t"] + int(rng.integers(1, 6))
        if a is not None and a.get("_ack_on") == s["t"]:
            alerts.acknowledge(v, vids[v], f"battery:{bid}", at + np.timedelta64(int(rng.uniform(3600, 40000)), "s"))


def _forecast_table(f: _Fleet, s: dict, model: str, err: tuple[float, float], rng) -> pa.Table | None:
    t, d = s["t"], s["date"]
    idx = np.flatnonzero(s["active"])
    if not len(idx):
        return None
    exp = f._expected(np.arange(t + 1, t + 1 + HORIZON), regime_at=t)[idx]
    bias, sd = err
    pred = exp * rng.lognormal(bias, sd, (len(idx), 1)) * rng.lognormal(0, 0.06, exp.shape)
    pred = np.round(pred, 5)
    life, rated = f.lifetime[idx], f.rated[idx]
    path = life[:, None] + np.cumsum(pred, axis=1)
    reach = path >= rated[:, None]
    first = np.where(reach.any(axis=1), reach.argmax(axis=1) + 1, -1)
    days_to = np.where(life >= rated, 0, first)
    hist = d.toordinal() - f.install[idx] + 1
    fallback = np.where(hist < 7, "fleet_median", np.where(hist < 28, "short_history_mean",
                        np.where(hist < 56, "padded_history", "")))
    n = len(idx)
    return pa.table({
        "battery_id": pa.array(f.battery_ids(idx), pa.string()),
        "vehicle_id": pa.array([f"V{i + 1:06d}" for i in idx], pa.string()),
        "as_of": pa.array(np.full(n, np.datetime64(d.isoformat(), "D"))),
        "lifetime_cycles": pa.array(np.round(life, 4)),
        "rated_cycles": pa.array(rated),
        "forecast_daily_cycles": pa.array(list(pred), pa.list_(pa.float64())),
        "projected_lifetime_cycles_30d": pa.array(np.round(path[:, -1], 4)),
        "days_to_rated": pa.array(np.where(days_to < 0, 0, days_to), pa.int64(), mask=days_to < 0),
        "alert": pa.array(path[:, -1] >= rated),
        "fallback": pa.array(fallback, pa.string(), mask=fallback == ""),
        "history_days": pa.array(hist, pa.int64()),
        "model": pa.array([model] * n, pa.string()),
        "scored_at": pa.array(_ts(d + dt.timedelta(days=1), rng.uniform(7200, 10800, n)), TS)})


def _status_rows(f: _Fleet, s: dict, vids: list[str], st: dict, rng) -> pa.Table | None:
    t, d = s["t"], s["date"]
    send = (s["reported"] & (rng.random(f.n) < STATUS_P)) | (s["active"] & (t == f.last))
    gone = np.flatnonzero(t == f.last + 1)            # their last will, the day after they stop
    idx = np.concatenate([np.flatnonzero(send), gone])
    if not len(idx):
        return None
    states = ["online"] * int(send.sum()) + ["offline"] * len(gone)
    at = _ts(d, rng.uniform(6 * 3600, 22 * 3600, len(idx)))
    ids = _ids(rng, len(idx)).to_pylist()
    st["sent"][idx] += rng.poisson(9, len(idx)) * 1
    flaky = st["flaky"][idx]
    st["drop_t"][idx] += np.where(flaky, rng.poisson(3, len(idx)), 0)
    st["drop_a"][idx] += np.where(flaky & (rng.random(len(idx)) < 0.1), 1, 0)
    out = {k: [] for k in ("msg_id", "vehicle_id", "state", "at", "outbox_rows", "outbox_bytes", "outbox_sent",
                           "dropped_telemetry", "dropped_alerts", "downlink_rejected", "models", "payload",
                           "received_at")}
    for j, v in enumerate(idx):
        rows = int(rng.poisson(40 if flaky[j] else 0.4))
        rej = st["rejected"][v]
        if rng.random() < 0.002:
            reason = str(rng.choice(["components:oversize", "model:sha256_mismatch", "ack:bad_type",
                                     "components:bad_field"]))
            rej[reason] = rej.get(reason, 0) + 1
        models = {}
        for slot, (k0, k1), start in (("battery", ("1.0.0", "1.1.0"), st["batt_upgrade"][v]),
                                      ("compliance", ("1.0.0", "1.1.0"), st["comp_upgrade"][v])):
            up = t >= start
            models[slot] = {"version": k1 if up else k0,
                            "sha256": (st["sha"][slot][1] if up else st["sha"][slot][0]),
                            "outcome": "installed",
                            "at": _iso(_ts(f.start + dt.timedelta(days=int(min(start, t) if up else 0)), [3600])[0])}
        outbox = {"rows": rows, "bytes": rows * 610, "enqueued": int(st["sent"][v]) + rows, "sent": int(st["sent"][v]),
                  "dropped_telemetry": int(st["drop_t"][v]), "dropped_alerts": int(st["drop_a"][v])}
        payload = {"schema": 1, "msg_id": ids[j], "vehicle_id": vids[v], "state": states[j], "at": _iso(at[j])}
        if states[j] == "online":
            payload |= {"outbox": outbox, "downlink_rejected": dict(rej), "models": models, "broker_rejected": 0}
        else:
            payload |= {"reason": "connection lost"}
        out["msg_id"].append(ids[j])
        out["vehicle_id"].append(vids[v])
        out["state"].append(states[j])
        out["at"].append(at[j])
        online = states[j] == "online"
        for col, key in (("outbox_rows", "rows"), ("outbox_bytes", "bytes"), ("outbox_sent", "sent"),
                         ("dropped_telemetry", "dropped_telemetry"), ("dropped_alerts", "dropped_alerts")):
            out[col].append(outbox[key] if online else None)
        out["downlink_rejected"].append(json.dumps(dict(rej)) if online else None)
        out["models"].append(json.dumps(models) if online else None)
        out["payload"].append(json.dumps(payload, separators=(",", ":")))
        out["received_at"].append(at[j] + np.timedelta64(int(rng.uniform(0.05, 3) * 1e6), "us"))
    ints = ("outbox_rows", "outbox_bytes", "outbox_sent", "dropped_telemetry", "dropped_alerts")
    return pa.table({k: _tsarr(v) if k in ("at", "received_at") else pa.array(v, pa.int64() if k in ints else pa.string())
                     for k, v in out.items()})


def _compliance(f: _Fleet, vids: list[str], vins: list[str], alerts: _Alerts, rescore_day: int, seed: int,
                rng) -> dict[str, list[dict]]:
    """Scoring runs per vehicle (+ the car's compliance alerts) -> {date: [rows]}."""
    gen = NoteGenerator(seed=seed)
    by_date: dict[str, list[dict]] = {}

    def verdict(facts):
        year, mat, cond = facts
        states = {"year": None if year is None else ("violates" if year < CUTOFF else "complies"),
                  "material": None if mat is None else ("violates" if mat in BAD_MATERIALS else "complies"),
                  "condition": None if cond is None else ("violates" if cond in BAD_CONDITIONS else "complies")}
        bad = [k for k, v in states.items() if v == "violates"]
        missing = [k for k, v in states.items() if v is None]
        v = "non_compliant" if bad else ("undetermined" if missing else "compliant")
        why = [w for k, w in (("year", str(year)), ("material", mat), ("condition", cond)) if k in bad]
        return v, {k: (v or "not_stated") for k, v in states.items()}, missing, why

    def row(v, comp, facts, model, at, with_states):
        verdict_, states, missing, why = verdict(facts)
        if not with_states and verdict_ == "undetermined":      # the old model had no such class
            verdict_ = "compliant"
        r = {"vehicle_id": vids[v], "vin": vins[v], "component": comp, "verdict": verdict_,
             "compliant": None if verdict_ == "undetermined" else verdict_ == "compliant",
             "year_value": facts[0], "material_value": facts[1], "condition_value": facts[2],
             "year_state": states["year"] if with_states else None,
             "material_state": states["material"] if with_states else None,
             "condition_state": states["condition"] if with_states else None,
             "missing": missing, "why": why, "model": model, "scored_at": at}
        by_date.setdefault(str(np.datetime64(at, "D")), []).append(r)
        return verdict_

    for v in range(f.n):
        if rng.random() < 0.1:          # no spec document for this car yet
            continue
        spec_day = int(rng.integers(f.first[v], max(f.first[v] + 1, min(f.last[v], f.days - 20))))
        comps = {}
        for p in rng.choice(len(PARTS), int(rng.integers(3, 10)), replace=False):
            fx = gen.facts(part=PARTS[p], label=int(rng.random() < 0.3))
            facts = [fx.year, fx.material, fx.condition]
            if rng.random() < 0.05:
                facts[int(rng.integers(0, 3))] = None
            comps[fx.part] = facts
        at = _ts(f.start + dt.timedelta(days=spec_day), [rng.uniform(3600, 80000)])[0]
        vday = (f.start + dt.timedelta(days=spec_day)).isoformat()
        for comp, facts in comps.items():
            if row(v, comp, facts, COMPLIANCE_MODELS[0], at, False) == "non_compliant":
                key = f"compliance:{vins[v]}:{comp}"
                why = verdict(facts)[3]
                words = ", ".join(f"“{w}”" for w in why)
                a = alerts.raise_or_update(
                    v, vids[v], key, "compliance", "warning", f"{comp.capitalize()} out of compliance",
                    f"The {comp} does not meet the component regulation — have it checked at your next service.",
                    {"component": comp, "vin": vins[v], "why": why, "p_noncompliant": 0.97,
                     "model": COMPLIANCE_MODELS[0], "summary": f"Non-compliant because of {words}."},
                    vday, at + np.timedelta64(int(rng.uniform(60, 3000)), "s"))
                if rng.random() < 0.5:
                    alerts.acknowledge(v, vids[v], key, a["updated"] + np.timedelta64(int(rng.uniform(1, 5) * 86400), "s"))
                if rng.random() < 0.3:          # part replaced later: compliant now, alert cleared
                    fix = spec_day + int(rng.integers(5, 120))
                    if fix < min(rescore_day, f.last[v]):
                        comps[comp] = [int(rng.integers(2015, 2026)), "steel", "new"]
                        alerts.clear(v, vids[v], key, (f.start + dt.timedelta(days=fix)).isoformat(),
                                     _ts(f.start + dt.timedelta(days=fix), [rng.uniform(30000, 60000)])[0])
        if spec_day < rescore_day <= f.last[v]:
            at2 = _ts(f.start + dt.timedelta(days=rescore_day), [rng.uniform(3600, 20000)])[0]
            for comp, facts in comps.items():
                row(v, comp, facts, COMPLIANCE_MODELS[1], at2, True)
    return by_date


def _compliance_table(rows: list[dict]) -> pa.Table:
    s = lambda k: pa.array([r[k] for r in rows], pa.string())   # noqa: E731
    return pa.table({
        "vehicle_id": s("vehicle_id"), "vin": s("vin"), "component": s("component"), "verdict": s("verdict"),
        "compliant": pa.array([r["compliant"] for r in rows], pa.bool_()),
        "year_value": pa.array([r["year_value"] for r in rows], pa.int64()),
        "year_state": s("year_state"), "material_state": s("material_state"), "condition_state": s("condition_state"),
        "material_value": s("material_value"), "condition_value": s("condition_value"),
        "missing": pa.array([r["missing"] for r in rows], pa.list_(pa.string())),
        "why": pa.array([r["why"] for r in rows], pa.list_(pa.string())),
        "model": s("model"), "scored_at": _tsarr([r["scored_at"] for r in rows])})


def generate(lake, vehicles: int = 2000, days: int = 730, seed: int = 7, end: dt.date = END,
             progress=None) -> dict:
    """Write daily/alerts/status/forecasts/compliance under `lake` (replacing those tables)."""
    root = Path(lake)
    for t in ("daily", "alerts", "status", "forecasts", "compliance"):
        shutil.rmtree(root / t, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    f = _Fleet(vehicles, days, end, rng)
    vid_list = [f"V{i + 1:06d}" for i in range(vehicles)]
    vids = pa.array(vid_list, pa.string())
    gen = NoteGenerator(seed=seed)
    vins = [gen.vin() for _ in range(vehicles)]
    alerts = _Alerts(vehicles, rng)
    upgrade = days - 180                    # battery model 1.1.0 released; shadow-scored for 8 weeks
    st = {"sent": np.zeros(vehicles, int), "drop_t": np.zeros(vehicles, int), "drop_a": np.zeros(vehicles, int),
          "flaky": rng.random(vehicles) < 0.01, "rejected": [dict() for _ in range(vehicles)],
          "batt_upgrade": np.where(rng.random(vehicles) < 0.04, 10 ** 9, upgrade + rng.exponential(20, vehicles)),
          "comp_upgrade": np.where(rng.random(vehicles) < 0.04, 10 ** 9, days - 70 + rng.exponential(10, vehicles)),
          "sha": {s: [rng.bytes(32).hex() for _ in range(2)] for s in ("battery", "compliance")}}
    counts = {"daily": 0, "alerts": 0, "status": 0, "forecasts": 0, "compliance": 0}
    for t in range(days):
        s = f.day(t)
        ds = s["date"].isoformat()
        tab = _daily_table(f, s, vids, rng)
        _write(root, "daily", ds, tab)
        counts["daily"] += tab.num_rows
        _battery_alerts(f, s, alerts, vid_list)
        stat = _status_rows(f, s, vid_list, st, rng)
        if stat is not None:
            _write(root, "status", ds, stat)
            counts["status"] += stat.num_rows
        if t % SCORE_EVERY == SCORE_EVERY - 1:
            runs = []
            if t < upgrade + 56:
                runs.append((BATTERY_MODELS[0], (0.06, 0.16)))
            if t >= upgrade:
                runs.append((BATTERY_MODELS[1], (0.0, 0.08)))
            parts = [x for x in (_forecast_table(f, s, m, e, rng) for m, e in runs) if x is not None]
            if parts:
                fc = pa.concat_tables(parts)
                _write(root, "forecasts", ds, fc)
                counts["forecasts"] += fc.num_rows
        if progress and t % 30 == 0:
            progress(t, days)
    by_date = _compliance(f, vid_list, vins, alerts, days - 70, seed, rng)
    for ds, rows in sorted(by_date.items()):
        _write(root, "compliance", ds, _compliance_table(rows))
        counts["compliance"] += len(rows)
    if alerts.rows:
        al = alerts.table()
        day = pc.strftime(al["updated"], "%Y-%m-%d")
        for ds in sorted(set(day.to_pylist())):
            _write(root, "alerts", ds, al.filter(pc.equal(day, ds)))
        counts["alerts"] = al.num_rows
    return {"lake": str(root), "vehicles": vehicles, "days": days, "end": end.isoformat(), "seed": seed,
            "rows": counts}


def lake_bytes(lake) -> int:
    return sum(p.stat().st_size for p in Path(lake).rglob("*.parquet"))
