"""Putting frames on a python-can bus: pacing in vehicle time, recording, replay.

- `open_bus(interface, channel, port=, bitrate=)` opens any python-can interface
  (virtual, udp_multicast, socketcan, slcan, ...); `interface="none"` means no bus.
- `send_stream(bus, stream, speed=86400)` sends (vehicle_time, msg) pairs so that
  `speed` simulated seconds pass per wall second; `speed=None` = max speed (no sleeping).
  Optional `record=path` writes every sent frame to a python-can log (format by suffix:
  .log candump, .asc, .blf, .csv, ...) with timestamps = vehicle time, like a real car's log.
- `read_log(path)` / `replay(path, bus, speed=1.0)` send a recorded log again, paced by its
  timestamps (speed 1 = as recorded; a sim log in vehicle time needs --speed 86400 to
  replay a day per second) or at max speed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import can

log = logging.getLogger("can_sim.runner")


@dataclass
class SendStats:
    frames: int = 0
    send_errors: int = 0
    wall_s: float = 0.0
    first_vt: float | None = None
    last_vt: float | None = None
    stopped: bool = False


def open_bus(interface: str, channel: str | None = None, *, port: int | None = None,
             bitrate: int | None = None, **kwargs) -> can.BusABC | None:
    """A python-can bus for sending; None for interface 'none' (truth/record only)."""
    if interface == "none":
        return None
    kw = dict(kwargs)
    if port is not None:
        kw["port"] = port
    if bitrate is not None:
        kw["bitrate"] = bitrate
    if interface == "slcan":
        kw.setdefault("sleep_after_open", 0)
    return can.Bus(interface=interface, channel=channel, **kw)


def _send(bus: can.BusABC, msg: can.Message, stats: SendStats) -> None:
    # Transmit buffers fill up (socketcan ENOBUFS, serial back-pressure): retry briefly,
    # then count and log once per run rather than dying mid-drive.
    for attempt in range(50):
        try:
            bus.send(msg, timeout=0.2)
            return
        except can.CanOperationError as exc:
            if attempt == 49:
                if stats.send_errors == 0:
                    log.warning("send failed, frame dropped (logged once): %s", exc)
                stats.send_errors += 1
                return
            time.sleep(0.002)


def send_stream(bus: can.BusABC | None, stream: Iterable[tuple[float, can.Message]], *,
                speed: float | None = 86400.0, record: str | Path | None = None,
                rate_limit: float | None = None, should_stop=None) -> SendStats:
    """Send (vehicle_time, msg) pairs in order. speed=None: as fast as possible.
    rate_limit: cap in frames per wall second (protects slow receivers, e.g. UDP buffers).
    should_stop: callable polled between frames; True ends the run early (stats.stopped)."""
    if speed is not None and speed <= 0:
        raise ValueError("speed must be > 0 (or None for max speed)")
    stats = SendStats()
    writer = can.Logger(str(record)) if record else None
    wall0 = time.perf_counter()
    vt0 = None
    try:
        for i, (vt, msg) in enumerate(stream):
            if vt0 is None:
                vt0 = stats.first_vt = vt
            if speed is not None or rate_limit:
                due = 0.0
                if speed is not None:
                    due = (vt - vt0) / speed
                if rate_limit:
                    due = max(due, i / rate_limit)
                ahead = due - (time.perf_counter() - wall0)
                if ahead > 0.002:
                    time.sleep(ahead)
            if should_stop is not None and (i & 63) == 0 and should_stop():
                stats.stopped = True
                break
            if bus is not None:
                _send(bus, msg, stats)
            if writer is not None:
                writer.on_message_received(msg)
            stats.frames += 1
            stats.last_vt = vt
    finally:
        if writer is not None:
            writer.stop()
        stats.wall_s = time.perf_counter() - wall0
    return stats


def read_log(path: str | Path) -> Iterator[tuple[float, can.Message]]:
    """(timestamp, msg) pairs from any python-can log file (format by suffix)."""
    for msg in can.LogReader(str(path)):
        if msg.is_error_frame:
            continue
        yield msg.timestamp, msg


def replay(path: str | Path, bus: can.BusABC | None, *, speed: float | None = 1.0,
           rate_limit: float | None = None, should_stop=None) -> SendStats:
    """Send a recorded log again: speed = recorded seconds per wall second, None = max speed."""
    if not Path(path).exists():
        raise FileNotFoundError(f"log file not found: {path}")
    return send_stream(bus, read_log(path), speed=speed, rate_limit=rate_limit, should_stop=should_stop)
