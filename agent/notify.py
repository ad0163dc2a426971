"""systemd notify protocol (sd_notify) without libsystemd: one datagram per state change
to the AF_UNIX socket named by $NOTIFY_SOCKET.

The daemon sends READY=1 once the bus is open, the models are loaded and the HMI listens;
WATCHDOG=1 from its main loop at half of WatchdogSec (so a hung loop stops the keep-alives
and systemd restarts the unit); STATUS=<text> for `systemctl status`; STOPPING=1 on the
way out. Outside systemd (no $NOTIFY_SOCKET) every call is a cheap no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None = None, watchdog_usec: str | None = None,
                 watchdog_pid: str | None = None):
        env = os.environ
        self.address = address if address is not None else env.get("NOTIFY_SOCKET", "")
        self._sock: socket.socket | None = None
        self._warned = False
        # WATCHDOG_USEC applies to us only if WATCHDOG_PID is unset or is our pid.
        usec = watchdog_usec if watchdog_usec is not None else env.get("WATCHDOG_USEC", "")
        pid = watchdog_pid if watchdog_pid is not None else env.get("WATCHDOG_PID", "")
        self.watchdog_interval: float | None = None
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 1e6 / 2.0
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def _target(self) -> str:
        # "@name" is the abstract namespace (leading NUL byte).
        return "\0" + self.address[1:] if self.address.startswith("@") else self.address

    def send(self, *fields: str) -> bool:
        if not self.address:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Never block the main loop on a receiver that does not read (a full
                # datagram queue would otherwise stall frame processing): drop instead.
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(fields).encode(), self._target())
            return True
        except OSError as exc:
            if not self._warned:    # log once; the service keeps running without systemd
                log.warning("sd_notify to %s failed: %s", self.address, exc)
                self._warned = True
            return False

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *( [f"STATUS={status}"] if status else []), f"MAINPID={os.getpid()}")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def stopping(self, status: str = "stopping") -> bool:
        return self.send("STOPPING=1", f"STATUS={status}")

    def reloading(self) -> bool:
        return self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def watchdog(self, force: bool = False) -> bool:
        """Keep-alive; rate-limited to the watchdog interval (half of WatchdogSec)."""
        if self.watchdog_interval is None and not force:
            return False
        now = time.monotonic()
        if not force and now - self._last_ping < self.watchdog_interval:
            return False
        self._last_ping = now
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
