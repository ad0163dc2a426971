"""The virtual car's engine ECU answering OBD-II mode 01 requests over ISO-TP (can-isotp), so the
agent's poller (agent.obd) is tested end to end on a python-can bus.

    ecu = ObdEcu(bus, supported={0x0C, 0x0D, 0x42, 0xA6}).start()
    ecu.awake = True; ecu.engine_running = True; ecu.rpm = 850 ...
    ecu.requests        # [(monotonic time, pid)] every request it received, for the tests
    ecu.stop()

While `awake` it also sends a heartbeat frame (`chatter_id`) every `chatter_s`, like the other
ECUs of an awake bus; asleep, it sends and answers nothing.
"""

from __future__ import annotations

import threading
import time

import can
import isotp

from agent.obd import PID_SUPPORT, encode_pid


class ObdEcu:
    def __init__(self, bus: can.BusABC, *, request_id: int = 0x7E0, response_id: int = 0x7E8,
                 supported=(0x0C, 0x0D, 0x42, 0xA6), chatter_id: int = 0x3E0, chatter_s: float = 0.05):
        self.bus = bus
        self.request_id = request_id
        self.supported = set(supported)
        self.chatter_id, self.chatter_s = chatter_id, chatter_s
        self.awake = False
        self.engine_running = False
        self.rpm, self.speed, self.voltage, self.odometer = 0.0, 0.0, 12.5, 12345.6
        self.requests: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        addr = isotp.Address(isotp.AddressingMode.Normal_11bits, txid=response_id, rxid=request_id)
        self.tp = isotp.TransportLayerLogic(rxfn=self._rxfn, txfn=self._txfn, address=addr,
                                            params={"blocking_send": False, "tx_padding": 0x55})
        self._th = threading.Thread(target=self._run, name="obd-ecu", daemon=True)

    def start(self) -> "ObdEcu":
        self._th.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._th.join(5)

    def _rxfn(self, timeout):
        m = self.bus.recv(0)
        while m is not None and (m.arbitration_id != self.request_id or m.is_extended_id):
            m = self.bus.recv(0)
        if m is None:
            return None
        return isotp.CanMessage(arbitration_id=m.arbitration_id, data=bytes(m.data), dlc=len(m.data))

    def _txfn(self, m) -> None:
        self.bus.send(can.Message(arbitration_id=m.arbitration_id, data=m.data, is_extended_id=False))

    def _value(self, pid: int):
        if pid in PID_SUPPORT:
            bitmap = 0
            for p in self.supported | {q for q in PID_SUPPORT if q > pid and any(s > q for s in self.supported)}:
                if pid < p <= pid + 0x20:
                    bitmap |= 1 << (31 - (p - pid - 1))
            return bitmap
        return {0x0C: self.rpm if self.engine_running else 0.0, 0x0D: self.speed if self.engine_running else 0.0,
                0x42: self.voltage, 0xA6: self.odometer}[pid]

    def _run(self) -> None:
        next_chatter = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if not self.awake:
                while self.bus.recv(0) is not None:      # asleep: requests fall on deaf ears
                    pass
                self._stop.wait(0.005)
                continue
            if now >= next_chatter:
                next_chatter = now + self.chatter_s
                self.bus.send(can.Message(arbitration_id=self.chatter_id, data=b"\x00" * 8, is_extended_id=False))
            self.tp.process()
            while self.tp.available():
                req = self.tp.recv()
                if len(req) >= 2 and req[0] == 0x01:
                    pid = req[1]
                    with self._lock:
                        self.requests.append((now, pid))
                    if pid in PID_SUPPORT or pid in self.supported:
                        self.tp.send(bytes([0x41, pid]) + encode_pid(pid, self._value(pid)))
                    else:
                        self.tp.send(bytes([0x7F, 0x01, 0x12]))       # sub-function not supported
                self.tp.process()
            self._stop.wait(0.002)

    def requested(self, since: float = 0.0) -> list[int]:
        with self._lock:
            return [p for t, p in self.requests if t >= since]
