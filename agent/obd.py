"""OBD-II polling (SAE J1979 mode 01 over ISO 15765-2, via the can-isotp library) for cars the
agent has no DBC for, or whose DBC lacks a signal.

    poller = ObdPoller(bus, obd_cfg, on_view)     # on_view(view, t): canonical values, frame time
    poller.on_frame(msg)                          # every received frame (the pipeline's tap)
    poller.step(now)                              # send the next request / read answers (main loop)

PIDs: 0x42 control module voltage -> Vehicle.LowVoltageBattery.CurrentVoltage, 0x0D speed ->
Vehicle.Speed, 0x0C RPM -> engine running -> Vehicle.LowVoltageSystemState (ON while RPM > 0,
else OFF), 0xA6 odometer -> Vehicle.TraveledDistance, each only where the ECU says it supports
it (the PID 0x00/0x20/... support bitmaps, asked once).

When it sends (never waking a sleeping bus):
- the bus is *awake* when any frame was received in the last `awake_s`; asleep = send nothing;
- awake and the engine running (last RPM > 0): every supported PID, one request at a time, a
  round every `interval_s`;
- awake and the engine not running (RPM 0, or no answer): only RPM, every `probe_s`, to see it
  start. So polling of voltage, speed and odometer stops when the engine stops.
Answers are matched to their request; a request without an answer in `timeout_s` is counted
(`timeouts`) and the round moves on. Nothing here ever raises into the caller.
"""

from __future__ import annotations

import collections
import logging
import time

import can
import isotp

from agent import signals as S

log = logging.getLogger("agent.obd")

PID_SUPPORT = (0x00, 0x20, 0x40, 0x60, 0x80, 0xA0)
PID_RPM, PID_SPEED, PID_VOLTAGE, PID_ODOMETER = 0x0C, 0x0D, 0x42, 0xA6
POLLED = (PID_RPM, PID_VOLTAGE, PID_SPEED, PID_ODOMETER)
PROVIDES = {S.VOLTAGE: "PID 0x42", S.SPEED: "PID 0x0D", S.SYSTEM_STATE: "PID 0x0C (engine running = ON)",
            S.ODOMETER: "PID 0xA6 (where supported)"}


def decode_pid(pid: int, data: bytes):
    """Physical value of a mode-01 answer's data bytes (after 0x41, pid); None if too short."""
    need = {PID_RPM: 2, PID_SPEED: 1, PID_VOLTAGE: 2, PID_ODOMETER: 4}.get(pid, 4)
    if len(data) < need:
        return None
    if pid == PID_RPM:
        return (256 * data[0] + data[1]) / 4.0
    if pid == PID_SPEED:
        return float(data[0])
    if pid == PID_VOLTAGE:
        return (256 * data[0] + data[1]) / 1000.0
    if pid == PID_ODOMETER:
        return int.from_bytes(data[:4], "big") / 10.0
    return int.from_bytes(data[:4], "big")             # a support bitmap


def encode_pid(pid: int, value) -> bytes:
    """Data bytes for a mode-01 answer (the simulator's ECU uses it)."""
    if pid == PID_RPM:
        return int(round(value * 4)).to_bytes(2, "big")
    if pid == PID_SPEED:
        return bytes([max(0, min(255, int(round(value))))])
    if pid == PID_VOLTAGE:
        return int(round(value * 1000)).to_bytes(2, "big")
    if pid == PID_ODOMETER:
        return int(round(value * 10)).to_bytes(4, "big")
    return int(value).to_bytes(4, "big")


def supported_from_bitmap(base: int, bitmap: int) -> set[int]:
    return {base + i + 1 for i in range(32) if bitmap & (1 << (31 - i))}


class ObdPoller:
    def __init__(self, bus: can.BusABC, cfg, on_view, clock=time.monotonic):
        self.bus = bus
        self.cfg = cfg
        self.on_view = on_view
        self.clock = clock
        self._rx: collections.deque = collections.deque(maxlen=256)
        addr = isotp.Address(isotp.AddressingMode.Normal_11bits, txid=cfg.request_id, rxid=cfg.response_id)
        self.tp = isotp.TransportLayerLogic(rxfn=self._rxfn, txfn=self._txfn, address=addr,
                                            error_handler=self._tp_error,
                                            params={"blocking_send": False, "tx_padding": 0x55})
        self.last_rx: float | None = None        # monotonic time of the last frame seen on the bus
        self.supported: set[int] | None = None   # None = not asked yet
        self._support_queue: list[int] = []
        self.running = False                     # engine running (last RPM > 0)
        self._pending: tuple | None = None       # (pid, sent at)
        self._queue: list[int] = []
        self._next_round = 0.0
        self._last_answer_ts = 0.0
        self.requests = self.answers = self.timeouts = self.errors = 0

    # ---- python-can <-> isotp ---------------------------------------------------------
    def _rxfn(self, timeout: float):
        if not self._rx:
            return None
        m = self._rx.popleft()
        return isotp.CanMessage(arbitration_id=m.arbitration_id, data=bytes(m.data), dlc=len(m.data),
                                extended_id=m.is_extended_id)

    def _txfn(self, m: "isotp.CanMessage") -> None:
        try:
            self.bus.send(can.Message(arbitration_id=m.arbitration_id, data=m.data, is_extended_id=m.is_extended_id))
        except can.CanError as exc:
            self.errors += 1
            log.debug("OBD request not sent: %s", exc)

    def _tp_error(self, exc) -> None:
        self.errors += 1
        log.debug("ISO-TP: %s", exc)

    # ---- feeding -------------------------------------------------------------------------
    def on_frame(self, msg: can.Message) -> None:
        """Every frame received (any ID): the bus is awake; answers go to ISO-TP."""
        self.last_rx = self.clock()
        if msg.arbitration_id == self.cfg.response_id and not msg.is_extended_id:
            self._rx.append(msg)
            self._last_answer_ts = msg.timestamp

    def awake(self, now: float) -> bool:
        return self.last_rx is not None and now - self.last_rx <= self.cfg.awake_s

    def step(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        try:
            self._step(now)
        except Exception:                # a library surprise must not stop the agent
            self.errors += 1
            log.exception("OBD poll step failed")

    def _step(self, now: float) -> None:
        self.tp.process()
        while self.tp.available():
            self._answer(self.tp.recv(), now)
        if self._pending is not None:
            pid, sent = self._pending
            if now - sent < self.cfg.timeout_s:
                return
            self.timeouts += 1
            self._pending = None
            if pid == PID_RPM and self.running:      # the ECU went quiet: the engine is off
                self._engine(False, time.time())
        if not self.awake(now):
            self._queue.clear()
            return                       # never wake a sleeping bus
        if not self._queue:
            if now < self._next_round:
                return
            self._next_round = now + (self.cfg.interval_s if self.running else self.cfg.probe_s)
            if self.supported is None and not self._support_queue:
                self._support_queue = [0x00]
                self.supported = set()
            if self._support_queue:
                self._queue = [self._support_queue[0]]
            elif self.running:
                self._queue = [p for p in POLLED if p in self.supported]
            else:
                self._queue = [PID_RPM] if PID_RPM in self.supported or not self.supported else []
        if self._queue:
            pid = self._queue.pop(0)
            self.tp.send(bytes([0x01, pid]))
            self.tp.process()
            self.requests += 1
            self._pending = (pid, now)

    def _answer(self, payload: bytes, now: float) -> None:
        if len(payload) < 2 or payload[0] != 0x41:
            return                       # a negative response (0x7F ...) or another service
        pid = payload[1]
        if self._pending is not None and self._pending[0] == pid:
            self._pending = None
        self.answers += 1
        value = decode_pid(pid, payload[2:])
        if value is None:
            return
        t = self._last_answer_ts or time.time()
        if pid in PID_SUPPORT:
            if self._support_queue and self._support_queue[0] == pid:
                self._support_queue.pop(0)
            got = supported_from_bitmap(pid, int(value))
            self.supported |= got
            if pid + 0x20 in got and pid + 0x20 in PID_SUPPORT:
                self._support_queue.append(pid + 0x20)
            if not self._support_queue:
                log.info("OBD-II: ECU 0x%X supports %s of PIDs %s", self.cfg.response_id,
                         sorted(f"0x{p:02X}" for p in self.supported & set(POLLED)),
                         [f"0x{p:02X}" for p in POLLED])
                self._next_round = 0.0
            return
        if pid == PID_RPM:
            self._engine(value > 0, t)
        elif pid == PID_VOLTAGE:
            self.on_view({S.VOLTAGE: value}, t)
        elif pid == PID_SPEED:
            self.on_view({S.SPEED: value}, t)
        elif pid == PID_ODOMETER:
            self.on_view({S.ODOMETER: value}, t)

    def _engine(self, running: bool, t: float) -> None:
        changed = running != self.running
        self.running = running
        self.on_view({S.SYSTEM_STATE: "ON" if running else "OFF"}, t)
        if changed:
            self._queue.clear()
            self._next_round = 0.0        # start the full round at once / stop it
            log.info("OBD-II: engine %s", "running: polling" if running else "stopped: polling stops")

    def stats(self) -> dict:
        return {"requests": self.requests, "answers": self.answers, "timeouts": self.timeouts,
                "errors": self.errors, "engine_running": self.running,
                "supported": sorted(self.supported or ())}
