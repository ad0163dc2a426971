"""The bus pipeline: CAN frames -> decode -> daily rollup -> store, with crash-safe checkpoints.

API (the daemon, the demo and the tests compose it):

    p = Pipeline.from_config(cfg, store)          # opens the python-can bus from cfg.can
    p = Pipeline(smap, store, bus=None)           # in-process: feed frames yourself
    p.add_day_closed_listener(fn)                 # fn(row) after the row is committed
    p.add_battery_changed_listener(fn)            # fn(old_id, new_id) on a new battery id
    p.feed(msg) -> list[rows closed]              # one can.Message
    p.feed_many(msgs) -> int
    p.poll(timeout=0.5, max_frames=1000) -> int   # receive and process a batch from the bus
    p.run(should_stop=None, timeout=0.2)          # loop poll() until should_stop() is true
    p.vehicle_time                                # latest vehicle time (epoch s) or None
    p.counters() -> dict                          # frames + drop counters by reason
    p.checkpoint()                                # persist accumulators now
    p.close()                                     # checkpoint (open day stays open) and close the bus

Bus opening (`open_bus(cfg.can, frame_ids)`): any python-can interface; `udp_multicast` uses
`can.port` (0 = default port); `socketcan` installs kernel receive filters for the mapped IDs;
`slcan` opens the serial device (a pty works) at `can.serial_baudrate`.

Crash safety. The rollup state is checkpointed with a resume marker (vehicle time of the last
time frame, frames processed after it): in the transaction of every closed day (with the rows),
every `checkpoint_vehicle_s` of vehicle time, every `checkpoint_wall_s` of wall time and at
close(). After a restart (even SIGKILL) the pipeline restores the state and skips, without
counting, every frame up to the marker - so re-feeding a recorded log from its start continues
exactly where the checkpoint was, and a live bus (whose frames are newer) resumes at once.
Closed days are never lost and Lifetime_Cycles_Used never goes backwards; frames received after
the last checkpoint of a live bus are lost with the process (at most checkpoint_wall_s of them).
"""

from __future__ import annotations

import logging
import time

import can

from agent import signals as S
from agent.decode import REASONS, Decoder
from agent.rollup import CLOCK_CONFIRM, CLOCK_JUMP_S, DailyRollup
from agent.signal_map import SignalMap, load_signal_map

log = logging.getLogger("agent.reader")

_CT = S.CURRENT_TIME


def open_bus(can_cfg, frame_ids=None, fd: bool = False) -> can.BusABC:
    """Open the python-can bus described by a CanConfig (receive side). frame_ids: the mapped IDs
    (ints, or (id, is_extended) pairs) for socketcan's kernel receive filters. fd: the map has
    CAN FD messages (payloads > 8 bytes): socketcan must be asked for FD frames."""
    iface, ch = can_cfg.interface, can_cfg.channel
    kw: dict = {}
    if fd and iface == "socketcan":
        kw["fd"] = True
    if iface == "udp_multicast":
        if getattr(can_cfg, "port", 0):
            kw["port"] = can_cfg.port
    elif iface == "socketcan":
        if frame_ids:
            # Kernel filters: the head unit never wakes up for the other ECUs' chatter.
            ids = [i if isinstance(i, tuple) else (i, i > 0x7FF) for i in frame_ids]
            kw["can_filters"] = [{"can_id": i, "can_mask": 0x1FFFFFFF if ext else 0x7FF, "extended": ext}
                                 for i, ext in ids]
    elif iface == "slcan":
        kw["bitrate"] = can_cfg.bitrate
        kw["tty_baudrate"] = can_cfg.serial_baudrate
        kw["sleep_after_open"] = 0
    elif iface not in ("virtual",):
        kw["bitrate"] = can_cfg.bitrate
    bus = can.Bus(interface=iface, channel=ch, **kw)
    if iface == "udp_multicast":
        _grow_rcvbuf(bus)
    return bus


def _grow_rcvbuf(bus, size: int = 4 << 20) -> None:
    """UDP has no back-pressure: with the default ~200 kB socket buffer a 50 ms scheduling hiccup
    at a few thousand frames/s loses datagrams. Ask for more (capped by net.core.rmem_max)."""
    import socket
    sock = getattr(getattr(bus, "_multicast", None), "_socket", None)
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    except OSError:
        log.debug("could not enlarge the UDP receive buffer", exc_info=True)


# What the agent does instead when the map leaves a canonical signal out (logged at start-up).
_INSTEAD = {
    S.VOLTAGE: "no cranking/resting voltage in the daily rows",
    S.CURRENT: "no current: cycles are not measured (from the throughput counter only, if mapped)",
    S.TEMPERATURE: "no Min/Max_Temperature in the daily rows",
    S.SOC: "state of charge not used",
    S.THROUGHPUT: "cycles = |current| integrated over the frames' time (not across a sleeping bus)",
    S.BATTERY_ID: "battery = the [battery] config section",
    S.RATED_CYCLES: "rated cycles = [battery] rated_cycles",
    S.NOMINAL_CAPACITY: "nominal capacity = [battery] nominal_capacity_ah",
    S.INSTALL_DATE: "battery age from [battery] install_date",
    S.SYSTEM_STATE: "no ignition: no trips counted",
    S.SPEED: "speed not used",
    S.ODOMETER: "odometer not used",
    S.CURRENT_TIME: "clock = frame timestamps",
}


def battery_info(bcfg):
    """BatteryInfo from a [battery] config section (None when the section gives no id)."""
    from datetime import date

    from agent.rollup import BatteryInfo
    if bcfg is None or not bcfg.id:
        return None
    install = None
    if bcfg.install_date:
        install = date.fromisoformat(bcfg.install_date).toordinal() - date(1970, 1, 1).toordinal()
    return BatteryInfo(bcfg.id, bcfg.rated_cycles or None, bcfg.nominal_capacity_ah or None, install)


class Pipeline:
    def __init__(self, smap: SignalMap, store=None, *, bus: can.BusABC | None = None, own_bus: bool = False,
                 checkpoint_vehicle_s: float = 3600.0, checkpoint_wall_s: float = 2.0, battery=None,
                 sleep_gap_s: float | None = None, quiescent_a: float = 0.0, estimate: tuple | None = None,
                 obd=None):
        self.smap = smap
        self.obd = None                 # agent.obd.ObdPoller when [obd] is enabled (fed from poll())
        self.store = store
        self.bus = bus
        self._own_bus = own_bus
        self.decoder = Decoder(smap)
        self.has_time = smap.has(_CT)
        self.checkpoint_vehicle_s = checkpoint_vehicle_s
        self.checkpoint_wall_s = checkpoint_wall_s
        self.frames = 0
        self.error_frames = 0
        self.skipped = 0                # frames dropped while resuming (already processed before a restart)
        self._after_time = 0            # frames processed since the last time frame
        self._skip: tuple | None = None   # resume marker while skipping already-processed frames
        self._skip_left = -1
        self._skip_far = 0
        self._day_listeners: list = []
        self._battery_listeners: list = []
        self._closed_flag = False
        self.seen: set | None = None    # canonical names decoded so far, when a caller wants them (replay)
        snap = store.load_checkpoint() if store is not None else None
        if snap:
            self.rollup = DailyRollup.restore(snap["rollup"])
            self.decoder.counts.update({k: int(v) for k, v in snap.get("counts", {}).items() if k in REASONS})
            self.frames = int(snap.get("frames", 0))
            self.error_frames = int(snap.get("error_frames", 0))
            if snap.get("marker") and snap["marker"][0] is not None:
                self._skip = tuple(snap["marker"])
                self.decoder.counting = False
            log.info("resumed from checkpoint: vehicle time %s, %d open day(s)", self.rollup.clock,
                     len(self.rollup.open))
        else:
            self.rollup = DailyRollup(use_counter=smap.has(S.THROUGHPUT))
        r = self.rollup
        r.measured = smap.has(S.THROUGHPUT) or smap.has(S.CURRENT)
        r.estimate = None if r.measured else estimate
        if sleep_gap_s is not None:
            r.sleep_gap_s = float(sleep_gap_s)
        r.quiescent_a = float(quiescent_a)
        if obd is not None and obd.enabled and bus is not None:
            from agent.obd import ObdPoller
            self.obd = ObdPoller(bus, obd, self.feed_view)
            log.info("OBD-II polling on: requests to 0x%X, answers from 0x%X", obd.request_id, obd.response_id)
        self._log_unmapped(battery)
        if battery is not None and not smap.has(S.BATTERY_ID):
            r.use_battery(battery)
        elif battery is not None:
            log.warning("[battery] id %s ignored: the bus carries %s (identity frames win)", battery.id, S.BATTERY_ID)
        self._last_ck_vt = self.rollup.clock
        self._last_ck_wall = time.monotonic()

    def _log_unmapped(self, battery) -> None:
        # agent.obd (and can-isotp with it) is imported only when OBD polling is on: every
        # other start would pay its import in time and RSS for nothing.
        provides = {}
        if self.obd is not None:
            from agent.obd import PROVIDES as provides
        missing = [c for c in S.ALL if not self.smap.has(c)]
        for c in missing:
            if c in provides:
                log.info("no %s in the signal map: from OBD-II %s", c, provides[c])
            else:
                log.info("no %s in the signal map: %s", c, _INSTEAD[c])
        if not self.smap.has(S.BATTERY_ID) and battery is None:
            log.warning("no %s in the signal map and no [battery] section: no daily rows can be made "
                        "(set [battery] id, rated_cycles, nominal_capacity_ah, install_date)", S.BATTERY_ID)

    @classmethod
    def from_config(cls, cfg, store, *, bus: can.BusABC | None = None, **kw) -> "Pipeline":
        """Signal map from cfg.can (shipped DBC/map by default); opens the bus unless given."""
        dbc, map_path = cfg.can.dbc or None, cfg.can.signal_map or None
        if getattr(cfg.can, "profile", ""):
            from agent.vehicles import profile_paths
            pdbc, pmap = profile_paths(cfg.can.profile)
            dbc, map_path = dbc or pdbc, map_path or pmap
        smap = load_signal_map(dbc, map_path)
        b = getattr(cfg, "battery", None)
        if b is not None:
            kw.setdefault("battery", battery_info(b))
            kw.setdefault("sleep_gap_s", b.sleep_gap_s)
            kw.setdefault("quiescent_a", b.quiescent_current_a)
        obd_cfg = getattr(cfg, "obd", None)
        if obd_cfg is not None and obd_cfg.enabled and obd_cfg.est_running_a + obd_cfg.est_start_ah > 0:
            kw.setdefault("estimate", (obd_cfg.est_start_ah, obd_cfg.est_running_a))
        own = bus is None
        if own:
            # OBD-II needs every frame: its answers, and any traffic saying the bus is awake.
            ids = None if obd_cfg is not None and obd_cfg.enabled else smap.frame_keys
            fd = any(smap.message_for(b).length > 8 for b in smap.bindings.values())
            bus = open_bus(cfg.can, ids, fd=fd)
            log.info("listening on %s:%s for %d mapped IDs", cfg.can.interface, cfg.can.channel, len(smap.frame_ids))
        return cls(smap, store, bus=bus, own_bus=own, obd=obd_cfg, **kw)

    # ---- listeners -------------------------------------------------------------------------
    def add_day_closed_listener(self, fn) -> None:
        """fn(row) is called after each closed daily row is committed."""
        self._day_listeners.append(fn)

    def add_battery_changed_listener(self, fn) -> None:
        """fn(old_battery_id, new_battery_id) when the identity frame shows another battery."""
        self._battery_listeners.append(fn)

    @property
    def vehicle_time(self) -> float | None:
        return self.rollup.clock

    def counters(self) -> dict:
        c = dict(self.decoder.counts)
        c["no_time"] = self.rollup.no_time
        c["clock_suspect"] = self.rollup.clock_suspect
        c["frames"] = self.frames
        c["error_frames"] = self.error_frames
        return c

    # ---- processing ------------------------------------------------------------------------
    def feed(self, msg: can.Message) -> list:
        """Process one frame; returns the daily rows it closed (already stored)."""
        if self._skip is not None:
            self._skip_frame(msg)
            return []
        view = self.decoder.decode(msg)
        self.frames += 1
        if view is None:
            self._after_time += 1
            return []
        if self.seen is not None:
            self.seen.update(view)
        r = self.rollup
        if self.has_time:
            t = view.get(_CT)
            if t is not None and not r.clock_ok(t, msg.timestamp or None):
                t = None                   # a suspect clock sample is no resume point
        else:
            # No time signal: the frame's own timestamp (kernel receive time, or the recording's
            # time on replay). A frame built in-process without one gets the system clock.
            t = msg.timestamp or time.time()
        if t is not None:
            if r.clock is not None and t > r.clock and self.store is not None and (
                    self._last_ck_vt is None or t - self._last_ck_vt >= self.checkpoint_vehicle_s
                    or time.monotonic() - self._last_ck_wall >= self.checkpoint_wall_s):
                # A checkpoint boundary: everything before this time frame is processed.
                self.frames -= 1
                self.checkpoint()
                self.frames += 1
            self._after_time = 0
        else:
            self._after_time += 1
        if not self.has_time:
            r.set_clock(t, t)
            rows = r.feed(view)
        else:
            rows = r.feed(view, msg.timestamp or None)
        if rows:
            self._commit_rows(rows)
        if r.events:
            self._battery_events()
        return rows

    def feed_view(self, view: dict, t: float) -> list:
        """Canonical values from another source than a DBC frame (the OBD-II poller), received at
        frame time t; returns the daily rows it closed (stored)."""
        if self._skip is not None:
            return []
        r = self.rollup
        if self.seen is not None:
            self.seen.update(view)
        if not self.has_time:
            r.set_clock(t, t)
        rows = r.feed(view, t)
        if rows:
            self._commit_rows(rows)
        if r.events:
            self._battery_events()
        return rows

    def feed_many(self, msgs) -> int:
        n = 0
        feed = self.feed
        for m in msgs:
            feed(m)
            n += 1
        return n

    def _skip_frame(self, msg) -> None:
        """Resuming: drop frames up to the checkpoint marker (vehicle time t, n frames after it)."""
        t0, n_after = self._skip
        self.skipped += 1
        if self.has_time:
            view = self.decoder.decode(msg)
            t = view.get(_CT) if view else None
            if t is not None and abs(t - t0) > CLOCK_JUMP_S:
                # A glitching clock frame proves nothing; a live bus back after a long stop
                # does, once CLOCK_CONFIRM such frames in a row say so.
                self._skip_far = self._skip_far + 1 if t > t0 else 0
                if self._skip_far >= CLOCK_CONFIRM:
                    self._end_skip()
                    self.feed(msg)
                return
            if t is not None:
                self._skip_far = 0
        else:
            t = msg.timestamp
            if t > t0:
                self._end_skip()
                self.feed(msg)
            return
        if t is not None:
            if t > t0:
                self._end_skip()
                self.feed(msg)
                return
            self._skip_left = n_after if t == t0 else -1
            if self._skip_left == 0:
                self._end_skip()
            return
        if self._skip_left > 0:
            self._skip_left -= 1
            if self._skip_left == 0:
                self._end_skip()

    def _end_skip(self) -> None:
        self._skip = None
        self.decoder.counting = True
        log.info("caught up with the checkpoint at vehicle time %s (%d already-processed frames skipped)",
                 self.rollup.clock, self.skipped)

    def poll(self, timeout: float = 0.5, max_frames: int = 1000) -> int:
        """Receive up to max_frames (waiting up to timeout for the first) and process them."""
        if self.bus is None:
            return 0
        recv = self.bus.recv
        obd = self.obd
        msg = recv(timeout if obd is None else min(timeout, obd.cfg.timeout_s / 4))
        n = 0
        while msg is not None:
            if msg.is_error_frame:
                self.error_frames += 1       # bus errors are not frames of any message
            elif obd is not None and (obd.on_frame(msg) or msg.arbitration_id == obd.cfg.response_id):
                pass                         # an OBD-II answer: the poller decodes it
            else:
                self.feed(msg)
            n += 1
            if n >= max_frames:
                break
            msg = recv(0)
        if obd is not None:
            obd.step()
        if n == 0 and self.checkpoint_wall_s and time.monotonic() - self._last_ck_wall >= self.checkpoint_wall_s \
                and self._skip is None and self.rollup.clock is not None:
            self.checkpoint()     # quiet bus: persist what we have
        return n

    def run(self, should_stop=None, timeout: float = 0.2) -> int:
        """Poll until should_stop() returns True; returns frames processed."""
        total = 0
        while should_stop is None or not should_stop():
            total += self.poll(timeout)
        return total

    # ---- persistence -----------------------------------------------------------------------
    def _state(self) -> dict:
        return {"v": 1, "rollup": self.rollup.snapshot(), "counts": dict(self.decoder.counts),
                "frames": self.frames, "error_frames": self.error_frames,
                # Without a vehicle-time signal a re-fed frame is recognised by its timestamp.
                "marker": [self.rollup.clock, self._after_time]}

    def checkpoint(self) -> None:
        """Persist accumulators, counters and the resume marker in one transaction."""
        if self.store is None or self._skip is not None:
            return
        with self.store.transaction():
            self.store.save_checkpoint(self._state())
            self.store.set_counters(self.counters())
        self._last_ck_vt = self.rollup.clock
        self._last_ck_wall = time.monotonic()

    def _commit_rows(self, rows: list) -> None:
        if self.store is not None:
            # The time frame that closed the day has been applied: the marker includes it.
            with self.store.transaction():
                for row in rows:
                    self.store.store_daily_row(row)
                self.store.save_checkpoint(self._state())
                self.store.set_counters(self.counters())
            self._last_ck_vt = self.rollup.clock
            self._last_ck_wall = time.monotonic()
        for row in rows:
            for fn in self._day_listeners:
                try:
                    fn(row)
                except Exception:
                    log.exception("day-closed listener failed")

    def _battery_events(self) -> None:
        events, self.rollup.events = self.rollup.events, []
        for _, old, new in events:
            log.info("battery changed: %s -> %s (new history)", old, new)
            for fn in self._battery_listeners:
                try:
                    fn(old, new)
                except Exception:
                    log.exception("battery-changed listener failed")

    def close(self) -> None:
        """Persist the open accumulators (the day stays open) and close the bus if we opened it."""
        if self._closed_flag:
            return
        self._closed_flag = True
        try:
            self.checkpoint()
        finally:
            if self.bus is not None and self._own_bus:
                try:
                    self.bus.shutdown()
                except Exception:
                    log.debug("bus shutdown failed", exc_info=True)
