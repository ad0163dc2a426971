"""The agent daemon: one long-lived process composing the data path.

    CAN bus ─reader pipeline (decode + rollup)─▶ store (SQLite) ─day closed─▶ battery forecaster
    ─rule─▶ battery alert;   component notes ─compliance classifier─▶ compliance alerts;
    alerts ─▶ HMI (JSON + SSE on loopback)  and  ─▶ MQTT outbox (agent.sync, when [mqtt] is set)

Threads: the MAIN thread owns the bus: it receives frames in batches, feeds the pipeline
(day-closed listeners, hence forecasting and alerting, run there too), pings the systemd
watchdog, polls the bundle files for hot swaps and handles SIGTERM/SIGHUP flags. The HMI
serves from its own threads (reads + acknowledgements only); MQTT sync runs in paho's thread.

Models: each bundle lives in a ModelSlot. A (re)load verifies the bundle (signature +
sha256 of every file) and builds the ONNX Runtime session from the verified bytes BEFORE
the slot's reference is replaced in a single assignment: inference always sees a complete
old or a complete new model. A bundle that fails verification or loading is refused with a
log line and the previous model keeps serving.

Signals: SIGTERM/SIGINT -> finish the current frame batch, close the pipeline (open
accumulators are persisted), flush, STOPPING=1, exit 0 (well inside 5 s). SIGHUP -> reload
the config (models, components spec, log level; other changes need a restart) and bundles.

Battery rule: each time a day closes for a battery, forecast its next 30 days from its
stored history; if lifetime + 30-day forecast >= rated, raise (or update) the one alert
"battery:<id>"; a new battery id clears the old battery's alert.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time
from pathlib import Path

from agent import bundle as bundle_mod
from agent.alerts import Alerts, utc_now
from agent.components import Components
from agent.config import Config, ConfigError, load_config, parse_listen
from agent.notify import Notifier

log = logging.getLogger("agent.daemon")

BATCH_MAX = 512              # frames per batch (a batch is finished before stopping)
RECV_TIMEOUT_S = 0.25        # main loop wake-up when the bus is silent (idle CPU ~0)
BUNDLE_POLL_S = 2.0          # how often bundle paths are checked for in-place replacement
HEALTH_PUSH_S = 2.0          # SSE health refresh while HMI clients are connected
COMPONENTS_PUSH_S = 1.0      # component list pushed to the HMI at most this often
HISTORY_DAYS_SHOWN = 30
MAX_BUS_ERRORS = 20          # consecutive receive failures (~10 s) before exiting for a restart


class ModelSlot:
    """A model built from a verified bundle; swapped atomically, refused bundles keep the old."""

    def __init__(self, kind: str, path: str | Path, trusted_keys, factory):
        self.kind = kind
        self.path = Path(path)
        self.trusted_keys = trusted_keys        # list of paths, or None = shipped dev keys
        self.factory = factory                  # factory(bundle) -> model object
        self._current: tuple | None = None      # (model, bundle): replaced in ONE assignment
        self._signature = None
        self.refused = 0
        self.last_error = ""
        self.loaded_at = ""

    @property
    def model(self):
        cur = self._current
        return cur[0] if cur else None

    @property
    def bundle(self):
        cur = self._current
        return cur[1] if cur else None

    def current(self):
        """(model, label) read together — callers use both from the same snapshot."""
        cur = self._current
        return (cur[0], f"{cur[1].name}@{cur[1].version}") if cur else (None, "")

    def _stat_signature(self):
        try:
            if self.path.is_dir():
                return tuple(sorted((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in self.path.iterdir()))
            st = self.path.stat()
            return (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            return None

    def changed_on_disk(self) -> bool:
        return self._stat_signature() != self._signature

    def load(self) -> bool:
        """Verify + build, then swap. False (and the old model stays) on any failure."""
        sig = self._stat_signature()
        try:
            keys = None if not self.trusted_keys else bundle_mod.load_trusted_keys(self.trusted_keys)
            b = bundle_mod.verify_bundle(self.path, keys)
            old = self.bundle
            if old is not None and old.sha256 == b.sha256:
                self._signature = sig
                return True
            model = self.factory(b)            # full ORT session built before the swap
        except Exception as exc:               # BundleError, ORT errors, bad manifests...
            self._signature = sig              # do not retry until the files change again
            self.refused += 1
            self.last_error = str(exc)
            serving = f"{self.bundle.name}@{self.bundle.version}" if self.bundle else "nothing"
            log.error("%s bundle refused (%s); still serving %s", self.kind, exc, serving)
            return False
        # Keep the manifest (identity, version) but not the file bytes: the session has
        # its own copy of the model, and every MB counts on a head unit.
        self._current = (model, bundle_mod.Bundle(b.source, b.manifest, {}))
        self._signature = sig
        self.loaded_at = utc_now()
        self.last_error = ""
        log.info("%s model loaded: %s@%s (sha256 %s) from %s", self.kind, b.name, b.version, b.sha256[:12], self.path)
        return True

    def info(self) -> dict:
        b = self.bundle
        return {"name": b.name if b else None, "version": b.version if b else None,
                "sha256": b.sha256 if b else None, "path": str(self.path), "loaded_at": self.loaded_at,
                "refused": self.refused, "last_error": self.last_error}


def hmi_limits(h):
    from agent.hmi.http import Limits
    return Limits(max_connections=h.max_connections, max_connections_per_client=h.max_connections_per_client,
                  max_event_streams=h.max_event_streams, header_timeout_s=h.header_timeout_s,
                  body_timeout_s=h.body_timeout_s, idle_timeout_s=h.idle_timeout_s,
                  write_timeout_s=h.write_timeout_s, workers=h.workers)


def _battery_factory(b):
    from agent.forecast import BatteryForecaster
    return BatteryForecaster.from_bundle(b)


def _compliance_factory(b):
    from agent.classify import ComplianceClassifier
    return ComplianceClassifier.from_bundle(b)


class Agent:
    """The daemon. start() -> run() (blocks until stop) ; or start() + step() for tests/demo."""

    def __init__(self, cfg: Config, notifier: Notifier | None = None, install_signals: bool = True):
        self.cfg = cfg
        self.notifier = notifier or Notifier()
        self.install_signals = install_signals
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._components_changed = threading.Event()
        self.ready = threading.Event()
        self.started_mono = time.monotonic()
        self.ready_after_s: float | None = None
        self.store = None
        self.alerts: Alerts | None = None
        self.components: Components | None = None
        self.pipeline = None
        self.hmi = None
        self.sync = None
        self.frames = 0
        self.batches = 0
        self._last_frame_mono: float | None = None
        self._battery_lock = threading.Lock()
        self._battery: dict = {}              # last forecast summary for the HMI
        trusted = list(cfg.models.trusted_keys) or None
        self.battery_slot = ModelSlot("battery", cfg.models.battery or bundle_mod.DEFAULT_BATTERY_BUNDLE,
                                      trusted, _battery_factory)
        self.compliance_slot = ModelSlot("compliance", cfg.models.compliance or bundle_mod.DEFAULT_COMPLIANCE_BUNDLE,
                                         trusted, _compliance_factory)
        # Releases: live / shadow / previous per slot, shadow evaluation, rollback (agent.model_slots).
        from agent.model_slots import ModelLifecycle
        self.lifecycle = ModelLifecycle(cfg.state.dir, {"battery": self.battery_slot, "compliance": self.compliance_slot},
                                        {"battery": _battery_factory, "compliance": _compliance_factory}, trusted,
                                        report=self._model_event)
        self.lifecycle.on_swapped = lambda name: self._model_swapped(
            self.battery_slot if name == "battery" else self.compliance_slot)
        for slot in (self.battery_slot, self.compliance_slot):
            slot.path = self.lifecycle.installed_path(slot.kind) or slot.path   # an installed release survives restarts

    # ------------------------------------------------------------------ lifecycle
    def _install_signal_handlers(self) -> None:
        # Before anything is announced (READY=1, the HMI answering): a SIGTERM arriving
        # while we start must become a clean stop, not the default kill.
        if self.install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
            signal.signal(signal.SIGINT, lambda *_: self.request_stop())
            signal.signal(signal.SIGHUP, lambda *_: self._reload.set())

    def start(self) -> "Agent":
        from agent.store import StateStore
        self._install_signal_handlers()
        cfg = self.cfg
        self.store = StateStore(cfg.state.dir)
        self.alerts = Alerts(self.store)
        with self.store.transaction() as conn:
            # A small page cache: the working set (today's checkpoint, one battery's history,
            # the alerts) is tiny, and SQLite's default 2 MB cache would count against RSS.
            conn.execute("PRAGMA cache_size=-512")
            conn.execute("CREATE TABLE IF NOT EXISTS battery_forecast (battery_id TEXT PRIMARY KEY, "
                         "as_of TEXT, updated TEXT, forecast TEXT NOT NULL)")
        if cfg.mqtt is not None:
            # Built first: its hooks must be on the store/alerts before any row or alert.
            self._make_sync()
        # Models: refusing at start is not fatal (the HMI and the history keep working),
        # but it is loud; a later good bundle (in place or SIGHUP) is picked up.
        self.battery_slot.load()
        self.compliance_slot.load()
        self.lifecycle.load_shadows()
        from agent.component_bounds import ComponentLimits
        self.components = Components(self.store, self.alerts, self._compliance_model,
                                     ComponentLimits.from_config(cfg.components))
        self._load_battery_state()
        self.pipeline = self._open_pipeline()
        if cfg.hmi.enabled:
            from agent.hmi import HmiServer
            host, port = parse_listen(cfg.hmi.listen, "hmi.listen")
            self.hmi = HmiServer(HmiApi(self), host, port, limits=hmi_limits(cfg.hmi)).start()
            self.alerts.add_listener(lambda a: self.hmi.events.publish("alert", a))
            self.components.add_listener(self._components_changed.set)   # pushed coalesced by run()
        if cfg.components.spec:
            self.components.load_spec(cfg.components.spec, source="spec")
        if self.sync is not None:
            self.sync.start()
        _release_memory()
        self.ready_after_s = time.monotonic() - self.started_mono
        self.ready.set()
        self.notifier.ready(self._status_text())
        log.info("agent ready in %.2f s (vehicle %s, bus %s:%s, HMI %s, MQTT %s)", self.ready_after_s,
                 cfg.vehicle.id, cfg.can.interface, cfg.can.channel, self.hmi.url if self.hmi else "off",
                 "on" if cfg.mqtt else "offline")
        return self

    def _open_pipeline(self):
        from agent.reader import Pipeline
        p = Pipeline.from_config(self.cfg, self.store)
        p.add_day_closed_listener(self._on_day_closed)
        p.add_battery_changed_listener(self._on_battery_changed)
        return p

    def _make_sync(self):
        from agent.sync import Sync
        self.sync = Sync(self.cfg, self.store, self.alerts,
                         on_components=lambda doc: self.components.apply_document(doc, source="cloud"),
                         on_ack=lambda alert_id, by="cloud": self.ack(alert_id, by=by),
                         on_bundle=self.install_bundle, on_promote=lambda name, rel: self.lifecycle.promote(name),
                         shadow_sha=self.lifecycle.shadow_sha, model_info=self.lifecycle.status)

    def _model_event(self, name: str, event: dict) -> None:
        if self.sync is not None:
            self.sync.releases.note_event(name, event)
        if self.hmi:
            self.hmi.events.publish("health", self.health())

    def _compliance_model(self):
        """(classifier, label) for agent.components: the live model behind the lifecycle guard."""
        from agent.model_slots import GuardedClassifier
        model, label = self.compliance_slot.current()
        return (GuardedClassifier(self.lifecycle) if model is not None else None), label

    def run(self) -> int:
        """Main loop until SIGTERM/SIGINT; returns the exit code."""
        self._install_signal_handlers()
        next_poll = next_health = next_components = time.monotonic()
        try:
            while not self._stop.is_set():
                self.step()
                now = time.monotonic()
                if self._reload.is_set():
                    self._reload.clear()
                    self.reload()
                if now >= next_poll:
                    next_poll = now + BUNDLE_POLL_S
                    self.poll_bundles()
                if self._components_changed.is_set() and now >= next_components:
                    # At most one whole-list push per COMPONENTS_PUSH_S, however many changes.
                    next_components = now + COMPONENTS_PUSH_S
                    self._components_changed.clear()
                    if self.hmi and self.hmi.events.clients:
                        self.hmi.events.publish("components", self.components.list())
                if now >= next_health:
                    next_health = now + HEALTH_PUSH_S
                    self.notifier.status(self._status_text())
                    if self.hmi and self.hmi.events.clients:
                        self.hmi.events.publish("health", self.health())
        finally:
            self.shutdown()
        return 0

    def step(self) -> int:
        """Receive and process one batch of frames (blocks up to RECV_TIMEOUT_S)."""
        try:
            n = self.pipeline.poll(timeout=RECV_TIMEOUT_S, max_frames=BATCH_MAX)
            self._bus_errors = 0
        except Exception as exc:
            # A bus that hiccups (interface down, adapter unplugged) is retried; one that
            # stays broken ends the process non-zero so systemd restarts it (the watchdog
            # would otherwise be fed by a loop that does nothing useful).
            self._bus_errors = getattr(self, "_bus_errors", 0) + 1
            if self._bus_errors == 1:
                log.error("bus receive failed: %s (retrying)", exc)
            if self._bus_errors >= MAX_BUS_ERRORS:
                raise RuntimeError(f"bus failing for {MAX_BUS_ERRORS} attempts: {exc}") from exc
            self._stop.wait(0.5)
            n = 0
        if n:
            self.frames += n
            self.batches += 1
            self._last_frame_mono = time.monotonic()
        self.notifier.watchdog()
        return n

    def request_stop(self) -> None:
        self._stop.set()

    def shutdown(self) -> None:
        """Close everything in order; idempotent."""
        if getattr(self, "_shut", False):
            return
        self._shut = True
        self.notifier.stopping("stopping: persisting open day")
        t0 = time.monotonic()
        if self.pipeline is not None:
            try:
                self.pipeline.close()          # persists open accumulators, closes the bus
            except Exception:
                log.exception("pipeline close failed")
        if self.sync is not None:
            try:
                self.sync.stop()
            except Exception:
                log.exception("sync stop failed")
        if self.hmi is not None:
            self.hmi.stop()
        if self.store is not None and hasattr(self.store, "close"):
            self.store.close()
        log.info("agent stopped in %.2f s (%d frames processed)", time.monotonic() - t0, self.frames)
        self.notifier.close()

    # ------------------------------------------------------------------ reload / models
    def reload(self) -> None:
        """SIGHUP: re-read the config; apply what can change live; reload bundles."""
        self.notifier.reloading()
        if self.cfg.source and Path(self.cfg.source).is_file():
            try:
                new = load_config(self.cfg.source)
            except ConfigError as exc:
                log.error("reload: config refused, keeping the running one: %s", exc)
                new = self.cfg
            if new != self.cfg:
                for section in ("vehicle", "can", "state", "hmi", "mqtt"):
                    if getattr(new, section) != getattr(self.cfg, section):
                        log.warning("reload: [%s] changed; takes effect after a restart", section)
                trusted = list(new.models.trusted_keys) or None
                for slot, path, default in ((self.battery_slot, new.models.battery, bundle_mod.DEFAULT_BATTERY_BUNDLE),
                                            (self.compliance_slot, new.models.compliance, bundle_mod.DEFAULT_COMPLIANCE_BUNDLE)):
                    slot.path = self.lifecycle.installed_path(slot.kind) or Path(path or default)
                    slot.trusted_keys = trusted
                logging.getLogger().setLevel(new.log.level.upper())
                self.cfg = new
        self._reload_slot(self.battery_slot)
        self._reload_slot(self.compliance_slot)
        if self.cfg.components.spec:
            # Re-read the notes (unchanged ones change nothing: no duplicate alerts).
            self.components.load_spec(self.cfg.components.spec, source="spec")
        self.notifier.send("READY=1", f"STATUS={self._status_text()}")

    def _reload_slot(self, slot: ModelSlot) -> bool:
        before = slot.bundle.sha256 if slot.bundle else None
        ok = slot.load()
        if ok and slot.bundle and slot.bundle.sha256 != before:
            self._model_swapped(slot)
        return ok

    def poll_bundles(self) -> None:
        for slot in (self.battery_slot, self.compliance_slot):
            if slot.changed_on_disk():
                self._reload_slot(slot)

    def _model_swapped(self, slot: ModelSlot) -> None:
        if slot is self.compliance_slot and self.components is not None:
            self.components.reclassify_all()
            if self.cfg.components.spec:    # notes refused while no model was loaded
                self.components.load_spec(self.cfg.components.spec, source="spec")
        if self.hmi:
            self.hmi.events.publish("health", self.health())

    def install_bundle(self, name: str, files: dict[str, bytes], release=None) -> bool:
        """A bundle announced by the cloud (agent.sync): verify in memory, then write it to
        the state dir and point the slot at it (a shadow release goes beside the live model:
        agent.model_slots). Refused bundles leave everything as is."""
        slot = {"battery": self.battery_slot, "compliance": self.compliance_slot}.get(name)
        if slot is None:
            log.warning("bundle for unknown model %r ignored", name)
            return False
        if release is not None and release.shadow:
            try:
                return self.lifecycle.install_shadow(name, files, release)
            except Exception as exc:
                slot.last_error = f"shadow: {exc}"
                log.error("%s shadow bundle refused: %s", name, exc)
                return False
        try:
            keys = None if not slot.trusted_keys else bundle_mod.load_trusted_keys(slot.trusted_keys)
            bundle_mod.verify_files(files, keys, f"downlink:{name}")
        except Exception as exc:
            slot.refused += 1
            slot.last_error = str(exc)
            log.error("%s bundle from the cloud refused: %s", name, exc)
            return False
        target = Path(self.cfg.state.dir) / "models" / name
        tmp = target.with_name(name + ".new")
        tmp.mkdir(parents=True, exist_ok=True)
        for f in tmp.iterdir():
            f.unlink()
        for fname, data in files.items():
            (tmp / fname).write_bytes(data)
        old = target.with_name(name + ".old")
        if target.exists():
            if old.exists():
                for f in old.iterdir():
                    f.unlink()
                old.rmdir()
            target.rename(old)
        tmp.rename(target)
        previous = slot.path
        slot.path = target
        if not self._reload_slot(slot):
            slot.path = previous
            return False
        return True

    # ------------------------------------------------------------------ battery rule
    def _on_day_closed(self, row: dict) -> None:
        bid = row.get("Battery_ID")
        model = self.battery_slot.model
        if not bid or model is None:
            return
        try:
            rows = self.store.history(battery_id=bid)
            fc = self.lifecycle.guarded("battery", lambda m: m.forecast(rows))   # rollback on a failing model
        except Exception:
            log.exception("battery forecast failed for %s on %s", bid, row.get("Date"))
            return
        shadow, shadow_fc = self.lifecycle.shadow_model("battery"), None
        if shadow is not None:
            try:
                shadow_fc = shadow.forecast(rows)        # same input; never alerts
            except Exception as exc:
                self.lifecycle.note_shadow_error("battery", exc)
        self.lifecycle.battery_day(row, fc, shadow_fc)
        if shadow is not None and self.sync is not None:
            self.sync.status_changed()                   # the evaluation goes up on the status topic
        self._apply_forecast(bid, row.get("Date"), fc, rows)

    def _apply_forecast(self, bid: str, date: str | None, fc: dict, rows: list[dict]) -> None:
        summary = battery_summary(bid, fc, rows)
        with self.store.transaction() as conn:
            conn.execute("INSERT INTO battery_forecast(battery_id, as_of, updated, forecast) VALUES (?,?,?,?) "
                         "ON CONFLICT(battery_id) DO UPDATE SET as_of=excluded.as_of, updated=excluded.updated, "
                         "forecast=excluded.forecast", (bid, date, utc_now(), json.dumps(summary, default=_num)))
        with self._battery_lock:
            self._battery = summary
        # A battery other than this one can no longer be in the car.
        self.alerts.clear_where("battery", keep=f"battery:{bid}", vehicle_date=date)
        if summary["alert"]:
            n = summary["days_to_rated"]
            n = 30 if n is None else max(0, int(n))
            expl = {k: summary[k] for k in (
                "battery_id", "as_of", "lifetime_cycles", "rated_cycles", "projected_lifetime_cycles_30d",
                "days_to_rated", "forecast_daily_cycles", "fallback", "history_days", "recent_mean_daily_cycles",
                "fleet_median_daily_cycles", "fleet_percentile", "usage_vs_fleet", "model", "cycles_source")
                if k in summary}
            expl["summary"] = summary["explanation_text"]
            if str(summary.get("cycles_source") or "").startswith("estimated"):
                expl["summary"] += f" Cycles are estimated ({summary['cycles_source']}), not measured."
            self.alerts.raise_or_update(
                f"battery:{bid}", "battery", "critical" if n <= 7 else "warning",
                title="Battery service needed",
                message=(f"Battery expected to reach end of life in about {n} day{'s' if n != 1 else ''} — "
                         "schedule a service appointment") if n > 0 else
                        "Battery has reached the end of its rated life — schedule a service appointment",
                explanation=expl, vehicle_date=date)
        if self.hmi:
            self.hmi.events.publish("battery", self.battery())

    def _on_battery_changed(self, old, new) -> None:
        log.info("battery changed: %s -> %s", old, new)
        self.alerts.clear_where("battery", keep=f"battery:{new}" if new else None)
        with self._battery_lock:
            self._battery = {"battery_id": new}
        if self.hmi:
            self.hmi.events.publish("battery", self.battery())

    def _load_battery_state(self) -> None:
        with self.store.transaction() as conn:
            row = conn.execute("SELECT forecast FROM battery_forecast ORDER BY as_of DESC, updated DESC LIMIT 1").fetchone()
        if row:
            try:
                self._battery = json.loads(row[0])
            except ValueError:
                self._battery = {}

    # ------------------------------------------------------------------ HMI API
    def health(self) -> dict:
        idle = None if self._last_frame_mono is None else round(time.monotonic() - self._last_frame_mono, 1)
        counters = {}
        try:
            counters = self.pipeline.counters() if self.pipeline is not None else {}
        except Exception:
            log.debug("counters unavailable", exc_info=True)
        vt = getattr(self.pipeline, "vehicle_time", None)
        mqtt = {"state": "offline", "connected": False, "configured": self.cfg.mqtt is not None}
        if self.sync is not None:
            try:
                st = self.sync.status()
                mqtt.update(st if isinstance(st, dict) else {"state": str(st)})
                mqtt.setdefault("connected", mqtt.get("state") == "connected")
            except Exception:
                log.debug("sync status unavailable", exc_info=True)
        return {
            "status": "ok" if self.ready.is_set() else "starting",
            "ready": self.ready.is_set(),
            "vehicle_id": self.cfg.vehicle.id,
            "vehicle_date": _vehicle_date(vt),
            "uptime_s": round(time.monotonic() - self.started_mono, 1),
            "ready_after_s": None if self.ready_after_s is None else round(self.ready_after_s, 3),
            "bus": {"interface": self.cfg.can.interface, "channel": self.cfg.can.channel, "frames": self.frames,
                    "last_frame_age_s": idle, "receiving": idle is not None and idle < 5.0},
            "mqtt": mqtt,
            "models": {n: {**s.info(), **self.lifecycle.info(n), "last_refused": self._last_refused(n),
                           "release": self._release(n)}
                       for n, s in (("battery", self.battery_slot), ("compliance", self.compliance_slot))},
            "counters": counters,
            "components_rejected": dict(self.components.rejected) if self.components else {},
            "hmi": self.hmi.stats() if self.hmi else {},
            "state_db": getattr(self.store, "integrity", {"status": "ok"}),
        }

    def _release(self, name: str) -> dict | None:
        """The slot's accepted release (version, expiry) and whether it expired: an update
        withheld from the car (freeze) shows here instead of going unnoticed."""
        if self.sync is None:
            return None
        trust = self.sync.releases.trust
        a = trust.accepted.get(name)
        return {**a, "expired": trust.expired(name)} if a else None

    def _last_refused(self, name: str) -> dict | None:
        """The last release refused for this slot and why (downlink), else a local bundle refusal."""
        r = self.sync.releases.last_refused.get(name) if self.sync is not None else None
        slot = self.battery_slot if name == "battery" else self.compliance_slot
        if r is None and slot.last_error:
            r = {"reason": slot.last_error, "release": None}
        return r

    def ack(self, alert_id: int, by: str = "driver") -> dict:
        return self.alerts.acknowledge(alert_id, by=by)

    def battery(self) -> dict:
        with self._battery_lock:
            b = dict(self._battery)
        bid = b.get("battery_id")
        hist = []
        if bid and self.store is not None:
            rows = self.store.history(battery_id=bid)[-HISTORY_DAYS_SHOWN:]
            hist = [{"date": r["Date"], "daily_cycles": _f(r.get("Daily_Cycles_Used")),
                     "lifetime_cycles": _f(r.get("Lifetime_Cycles_Used"))} for r in rows]
        fc = None
        if b.get("forecast_daily_cycles"):
            fc = {k: b.get(k) for k in ("forecast_daily_cycles", "projected_lifetime_cycles_30d", "days_to_rated",
                                        "alert", "as_of", "model", "fallback", "history_days")}
        return {"battery_id": bid, "as_of": b.get("as_of"),
                "lifetime_cycles": b.get("lifetime_cycles", hist[-1]["lifetime_cycles"] if hist else None),
                "rated_cycles": b.get("rated_cycles"), "forecast": fc, "history": hist,
                "recent_mean_daily_cycles": b.get("recent_mean_daily_cycles"),
                "fleet_median_daily_cycles": b.get("fleet_median_daily_cycles"),
                "usage_vs_fleet": b.get("usage_vs_fleet"), "explanation": b.get("explanation_text"),
                "alert": bool(b.get("alert"))}

    def _status_text(self) -> str:
        n = len(self.alerts.list(active_only=True)) if self.alerts else 0
        return f"{self.frames} frames, {n} active alerts, MQTT {'on' if self.sync else 'offline'}"


class HmiApi:
    """What the HMI server calls (agent.hmi.server docstring), backed by the Agent."""

    def __init__(self, agent: Agent):
        self.agent = agent

    def health(self) -> dict:
        return self.agent.health()

    def alerts(self, active_only: bool = False) -> list[dict]:
        return self.agent.alerts.list(active_only=active_only)

    def alert(self, alert_id: int) -> dict | None:
        return self.agent.alerts.get(alert_id)

    def ack(self, alert_id: int, by: str = "driver") -> dict:
        return self.agent.ack(alert_id, by=by)

    def battery(self) -> dict:
        return self.agent.battery()

    def components(self) -> list[dict]:
        return self.agent.components.list()


def battery_summary(bid, fc: dict, rows: list[dict]) -> dict:
    """Forecaster answer (agent.forecast) -> what the alert explanation and the HMI show."""
    expl = fc.get("explanation") or {}
    model = fc.get("model") or {}
    daily = [max(0.0, float(x)) for x in (fc.get("forecast_daily_cycles") or [])]
    lifetime, rated = _f(fc.get("lifetime_cycles")), _f(fc.get("rated_cycles"))
    projected = _f(fc.get("projected_lifetime_cycles_30d"))
    if projected is None and lifetime is not None:
        projected = lifetime + sum(daily)
    out = {
        "battery_id": bid,
        "as_of": fc.get("as_of") or (rows[-1]["Date"] if rows else None),
        "lifetime_cycles": lifetime,
        "rated_cycles": rated,
        "forecast_daily_cycles": [round(x, 4) for x in daily],
        "projected_lifetime_cycles_30d": projected,
        "days_to_rated": fc.get("days_to_rated"),
        "alert": bool(fc.get("alert")),
        "fallback": fc.get("fallback"),
        "history_days": fc.get("history_days"),
        "model": f"{model.get('name')}@{model.get('version')}" if model else None,
        "recent_mean_daily_cycles": _f(expl.get("recent_mean_daily_cycles")),
        "fleet_median_daily_cycles": _f(expl.get("fleet_median_daily_cycles")),
        "fleet_percentile": _f(expl.get("fleet_percentile")),
        "usage_vs_fleet": _f(expl.get("ratio_to_fleet")),
        "explanation_text": expl.get("text") or "",
        # how the cycles behind this forecast were obtained (docs/rollup.md): measured or estimated
        "cycles_source": rows[-1].get("Cycles_Source") if rows else None,
    }
    return out


def _f(x):
    """float or None (None for missing, unparsable and non-finite: JSON has no NaN)."""
    try:
        v = None if x is None or x == "" else float(x)
    except (TypeError, ValueError):
        return None
    return v if v is not None and math.isfinite(v) else None


def _num(o):
    try:
        return o.item()
    except AttributeError:
        return str(o)


def _vehicle_date(vt) -> str | None:
    if vt is None:
        return None
    try:
        from datetime import datetime, timezone
        return datetime.fromtimestamp(float(vt), timezone.utc).date().isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _release_memory() -> None:
    """Return the heap freed by start-up (bundle bytes, ORT graph building, JSON parsing) to
    the OS: glibc keeps it otherwise, and RSS is the budget on a head unit."""
    import gc
    gc.collect()
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):     # not glibc: nothing to do
        pass


def run_agent(cfg: Config, notifier: Notifier | None = None) -> int:
    """`trey-agent run`: start, serve until SIGTERM, exit 0."""
    agent = Agent(cfg, notifier)
    try:
        agent.start()
    except Exception:
        agent.shutdown()
        raise
    return agent.run()


__all__ = ["Agent", "ModelSlot", "battery_summary", "run_agent"]
