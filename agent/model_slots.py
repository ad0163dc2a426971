"""Model lifecycle on the car: live / shadow / previous per slot, shadow evaluation,
promotion and automatic rollback. The daemon (agent.daemon) owns the ModelSlots; this
module owns what happens around them.

On disk (state_dir/models):  {slot}/          the live bundle installed from a release
                             {slot}.old/      the previous live bundle (rollback target)
                             {slot}.shadow/   a shadow bundle (+ {slot}.shadow.release.json)
A shadow model sees the same inputs as the live one and never raises an alert. Per slot
the agent keeps running metrics against what actually happens:
  battery     each closed day's realised Daily_Cycles_Used against what each model forecast
              for that day 1..30 days earlier (MAE by horizon), and whether the alert rule
              would have fired with each model's forecast (alert agreement);
  compliance  verdict agreement between live and shadow on every classified note.
Promotion: a signed release of the shadow's own target with shadow=false (agent.model_downlink),
or the shadow release's policy {"after_days", "max_mae_ratio", "min_agreement"}.
Rollback: a live model installed from a release whose output is non-finite or out of range,
that raises, or that runs far over its latency budget is replaced by {slot}.old, reported on
status and health; the shipped bundle is the last resort (nothing older to roll back to).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import threading
import time
from datetime import date, timedelta
from pathlib import Path

from agent import bundle as bundle_mod
from agent.alerts import utc_now

log = logging.getLogger("agent.model_slots")

HORIZON = 30
MAX_DAILY_CYCLES = 10.0        # a 12 V battery cannot use more in a day: beyond = a broken model
LATENCY_BUDGET_S = 10.0        # one forecast / one note batch; far over = failing in service


def output_fault(kind: str, out, seconds: float) -> str | None:
    """Why a model's answer shows it is failing in service, or None."""
    if seconds > LATENCY_BUDGET_S:
        return f"inference took {seconds:.1f} s (budget {LATENCY_BUDGET_S:.0f} s)"
    if kind == "battery":
        vals = out.get("forecast_daily_cycles") or []
        if not vals or any(not math.isfinite(v) for v in vals):
            return "forecast is NaN or infinite"
        if any(v < 0 or v > MAX_DAILY_CYCLES for v in vals):
            return f"forecast outside 0..{MAX_DAILY_CYCLES:.0f} cycles/day"
    else:
        for v in out:
            p = v.get("p_noncompliant")
            if p is None or not math.isfinite(float(p)) or not 0.0 <= float(p) <= 1.0:
                return "compliance probability NaN or outside 0..1"
    return None


class BatteryShadowEval:
    """MAE by horizon for the live and the shadow forecaster, and their alert agreement."""

    def __init__(self):
        self.forecasts: dict[str, dict[str, list]] = {"live": {}, "shadow": {}}   # role -> as_of -> daily
        self.err = {r: [0.0] * HORIZON for r in self.forecasts}
        self.n = {r: [0] * HORIZON for r in self.forecasts}
        self.alerts = {"days": 0, "agree": 0, "live": 0, "shadow": 0}
        self.days = 0

    def realised(self, day: str, cycles) -> None:
        try:
            d, y = date.fromisoformat(day), float(cycles)
        except (TypeError, ValueError):
            return
        if not math.isfinite(y):
            return
        for role, fcs in self.forecasts.items():
            for h in range(1, HORIZON + 1):
                fc = fcs.get((d - timedelta(days=h)).isoformat())
                if fc is not None and len(fc) >= h and math.isfinite(fc[h - 1]):
                    self.err[role][h - 1] += abs(fc[h - 1] - y)
                    self.n[role][h - 1] += 1
            cutoff = (d - timedelta(days=HORIZON)).isoformat()
            for k in [k for k in fcs if k <= cutoff]:
                del fcs[k]

    def record(self, day: str, live: dict | None, shadow: dict | None) -> None:
        self.days += 1
        for role, fc in (("live", live), ("shadow", shadow)):
            if fc is not None:
                self.forecasts[role][day] = [float(v) for v in fc.get("forecast_daily_cycles") or []]
        if live is not None and shadow is not None:
            a, b = bool(live.get("alert")), bool(shadow.get("alert"))
            self.alerts["days"] += 1
            self.alerts["agree"] += a == b
            self.alerts["live"] += a
            self.alerts["shadow"] += b

    def mae(self, role: str) -> float | None:
        n = sum(self.n[role])
        return sum(self.err[role]) / n if n else None

    def summary(self) -> dict:
        def by_h(role):
            return [round(e / n, 5) if n else None for e, n in zip(self.err[role], self.n[role])]
        a = self.alerts
        return {"days": self.days,
                "mae_by_horizon": {r: by_h(r) for r in self.err},
                "mae": {r: None if self.mae(r) is None else round(self.mae(r), 5) for r in self.err},
                "alerts": dict(a, agreement=round(a["agree"] / a["days"], 4) if a["days"] else None)}

    def agreement(self) -> float | None:
        return self.alerts["agree"] / self.alerts["days"] if self.alerts["days"] else None


class ComplianceShadowEval:
    def __init__(self):
        self.notes = self.agree = 0
        self.days = 0           # compliance has no day clock; policy uses the note count

    def compare(self, live: list[dict], shadow: list[dict]) -> None:
        # the verdicts (compliant / non_compliant / undetermined), not bool(compliant): an
        # undetermined note is no agreement with a non-compliant one (older single-verdict
        # bundles: their compliant field)
        for a, b in zip(live, shadow):
            self.notes += 1
            self.agree += a.get("verdict", a["compliant"]) == b.get("verdict", b["compliant"])

    def agreement(self) -> float | None:
        return self.agree / self.notes if self.notes else None

    def summary(self) -> dict:
        ag = self.agreement()
        return {"notes": self.notes, "agree": self.agree, "agreement": None if ag is None else round(ag, 4)}


class GuardedClassifier:
    """What agent.components sees as the compliance model: the live verdicts (guarded, so a
    failing promoted model is rolled back), and while a shadow runs, the shadow's verdicts on
    the same notes — compared, never stored, never alerting."""

    def __init__(self, lifecycle):
        self.lifecycle = lifecycle

    def classify(self, texts, explain: bool = True):
        lc = self.lifecycle
        out = lc.guarded("compliance", lambda m: m.classify(texts, explain=explain))
        shadow = lc.shadow_model("compliance")
        if shadow is not None:
            try:
                lc.evals["compliance"].compare(out, shadow.classify(texts, explain=False))
            except Exception as exc:        # a broken shadow never hurts the live path
                lc.note_shadow_error("compliance", exc)
        return out


class ModelLifecycle:
    def __init__(self, state_dir, slots: dict, factories: dict, trusted_keys=None, report=None):
        self.root = Path(state_dir) / "models"
        self.slots = slots                    # name -> agent.daemon.ModelSlot (live)
        # the configured / shipped bundle of each slot: the last resort of a rollback
        self.defaults = {n: Path(s.path) for n, s in slots.items()}
        self.factories = factories            # name -> factory(bundle) -> model
        self.trusted_keys = trusted_keys
        self.report = report or (lambda slot, event: None)   # (slot, {"outcome", "reason"...}) -> status
        self.shadows: dict[str, tuple] = {}   # name -> (model, manifest, release signed dict)
        self.evals = {"battery": BatteryShadowEval(), "compliance": ComplianceShadowEval()}
        self.events: dict[str, dict] = {}     # name -> last promotion / rollback
        self._lock = threading.RLock()
        self.on_swapped = lambda slot: None   # daemon: re-classify, HMI push

    # ------------------------------------------------------------------ paths
    def live_dir(self, name: str) -> Path:
        return self.root / name

    def installed_path(self, name: str) -> Path | None:
        """A bundle installed from a release survives restarts (else the shipped one)."""
        d = self.live_dir(name)
        return d if (d / bundle_mod.MANIFEST).is_file() else None

    def _write(self, target: Path, files: dict[str, bytes]) -> None:
        tmp = target.with_name(target.name + ".new")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for fname, data in files.items():
            (tmp / fname).write_bytes(data)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)

    def _keys(self):
        return None if not self.trusted_keys else bundle_mod.load_trusted_keys(self.trusted_keys)

    # ------------------------------------------------------------------ shadow
    def load_shadows(self) -> None:
        for name in self.slots:
            d = self.root / f"{name}.shadow"
            if (d / bundle_mod.MANIFEST).is_file():
                try:
                    rel = json.loads((self.root / f"{name}.shadow.release.json").read_text())
                    b = bundle_mod.verify_bundle(d, self._keys())
                    self.shadows[name] = (self.factories[name](b), b.manifest, rel)
                    log.info("%s shadow model loaded: %s@%s", name, b.name, b.version)
                except Exception as exc:
                    log.error("%s shadow bundle on disk refused (%s); removed", name, exc)
                    shutil.rmtree(d, ignore_errors=True)
        if self.shadows:
            _release_memory()

    def install_shadow(self, name: str, files: dict[str, bytes], release) -> bool:
        b = bundle_mod.verify_files(files, self._keys(), f"shadow:{name}")
        model = self.factories[name](b)            # built before anything is replaced
        self._write(self.root / f"{name}.shadow", files)
        (self.root / f"{name}.shadow.release.json").write_text(json.dumps(release.signed, sort_keys=True))
        with self._lock:
            self.shadows[name] = (model, b.manifest, release.signed)
            self.evals[name] = BatteryShadowEval() if name == "battery" else ComplianceShadowEval()
        log.info("%s shadow model installed: %s@%s", name, b.name, b.version)
        return True

    def shadow_sha(self, name: str) -> str | None:
        s = self.shadows.get(name)
        return s[2]["target"]["sha256"] if s else None

    def shadow_model(self, name: str):
        s = self.shadows.get(name)
        return s[0] if s else None

    def note_shadow_error(self, name: str, exc) -> None:
        log.warning("%s shadow model failed (%s); live model unaffected", name, exc)

    # ------------------------------------------------------------------ promote / rollback
    def promote(self, name: str, reason: str = "signed promotion") -> bool:
        with self._lock:
            if name not in self.shadows:
                return False
            slot = self.slots[name]
            live, old, sh = self.live_dir(name), self.root / f"{name}.old", self.root / f"{name}.shadow"
            if live.exists():
                shutil.rmtree(old, ignore_errors=True)
                live.rename(old)
            elif slot.bundle is not None and Path(slot.path).is_dir():     # shipped bundle = previous
                shutil.rmtree(old, ignore_errors=True)
                shutil.copytree(slot.path, old)
            sh.rename(live)
            (self.root / f"{name}.shadow.release.json").unlink(missing_ok=True)
            previous = slot.path
            slot.path = live
            if not slot.load():
                slot.path = previous
                return False
            del self.shadows[name]
        self.events[name] = {"event": "promoted", "reason": reason, "at": utc_now(),
                             "version": slot.bundle.version}
        self.report(name, {"outcome": "promoted", "reason": reason, "version": slot.bundle.version})
        log.info("%s shadow promoted to live (%s): %s@%s", name, reason, slot.bundle.name, slot.bundle.version)
        self.on_swapped(name)
        return True

    def rollback(self, name: str, why: str) -> bool:
        with self._lock:
            slot = self.slots[name]
            live, old = self.live_dir(name), self.root / f"{name}.old"
            failed = f"{slot.bundle.name}@{slot.bundle.version}" if slot.bundle else "?"
            if Path(slot.path) != live or (not (old / bundle_mod.MANIFEST).is_file() and self.defaults[name] == live):
                log.error("%s model %s failing in service (%s); nothing older on disk to roll back to",
                          name, failed, why)
                return False
            bad = self.root / f"{name}.failed"
            shutil.rmtree(bad, ignore_errors=True)
            live.rename(bad)
            if (old / bundle_mod.MANIFEST).is_file():
                old.rename(live)
            else:                             # the first release replaced the shipped bundle
                slot.path = self.defaults[name]
            if not slot.load():
                log.error("%s rollback: the previous bundle does not load either", name)
                return False
        ev = {"event": "rolled_back", "reason": why, "failed": failed, "at": utc_now(),
              "version": slot.bundle.version}
        self.events[name] = ev
        self.report(name, {"outcome": "rolled_back", "reason": f"{failed}: {why}", "version": slot.bundle.version})
        log.error("%s model %s failing in service (%s): rolled back to %s@%s", name, failed, why,
                  slot.bundle.name, slot.bundle.version)
        self.on_swapped(name)
        return True

    def guarded(self, name: str, call):
        """call(model) with the live model; a fault (exception, non-finite/out-of-range output,
        far over the latency budget) rolls the slot back and the call is repeated once with
        the previous model, so the caller still gets an answer from a working one."""
        model = self.slots[name].model
        t0 = time.monotonic()
        try:
            out = call(model)
            fault = output_fault(name, out, time.monotonic() - t0)
        except Exception as exc:
            out, fault = None, f"raised {type(exc).__name__}: {str(exc)[:100]}"
        if fault is None:
            return out
        if self.rollback(name, fault):
            return call(self.slots[name].model)
        if out is None:
            raise RuntimeError(fault)
        return out

    # ------------------------------------------------------------------ battery day close
    def battery_day(self, row: dict, live_fc: dict | None, shadow_fc: dict | None) -> None:
        ev = self.evals["battery"]
        ev.realised(row.get("Date"), row.get("Daily_Cycles_Used"))
        if "battery" in self.shadows:
            ev.record(row.get("Date"), live_fc, shadow_fc)
            self._maybe_policy_promote("battery")

    def _maybe_policy_promote(self, name: str) -> None:
        s = self.shadows.get(name)
        policy = (s[2].get("promote") if s else None) or None
        if not policy:
            return
        ev = self.evals[name]
        if ev.days < int(policy.get("after_days", 0)):
            return
        live, shadow = ev.mae("live"), ev.mae("shadow")
        ag = ev.agreement()
        if live is None or shadow is None or ag is None:
            return
        if shadow <= live * float(policy.get("max_mae_ratio", 1.0)) and ag >= float(policy.get("min_agreement", 0.0)):
            self.promote(name, f"policy: shadow MAE {shadow:.4f} <= live {live:.4f}, agreement {ag:.2f}")

    # ------------------------------------------------------------------ reporting
    def info(self, name: str) -> dict:
        s = self.shadows.get(name)
        out = {"shadow": None, "event": self.events.get(name)}
        if s:
            out["shadow"] = {"name": s[1].get("name"), "version": s[1].get("version"),
                             "release": s[2].get("version"), "promote": s[2].get("promote"),
                             "evaluation": self.evals[name].summary()}
        return out

    def status(self) -> dict:
        """For the status topic: per slot shadow + evaluation + last event."""
        return {n: self.info(n) for n in self.slots}


def _release_memory() -> None:
    import gc
    gc.collect()
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


__all__ = ["ModelLifecycle", "GuardedClassifier", "BatteryShadowEval", "ComplianceShadowEval", "output_fault"]
