"""`trey-sim` — drive the virtual car onto a CAN bus, or replay a recorded drive.

  trey-sim run --interface udp_multicast --channel 239.74.163.2 --scenario aging --days 400 \
      --speed 86400 --seed 7 --truth truth.csv [--start 2024-01-01] [--record drive.log]
  trey-sim replay drive.log --interface virtual --channel x [--speed 86400 | --max-speed]
  trey-sim vehicle vw_mqb --interface none --days 21 --record vw.log [--start 2024-05-06] [--seed 1]
      (a shipped vehicle profile's car with a sleeping bus, can_sim.production)
  trey-sim scenarios

Exit codes: 0 done, 2 bad arguments / cannot open the bus or file, 130/143 interrupted
(SIGINT/SIGTERM: the record file and the truth of the closed days are still written).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from datetime import date

log = logging.getLogger("can_sim")


def _bus_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--interface", required=True,
                   help="python-can interface: virtual, udp_multicast, socketcan, slcan, ... or 'none' (no bus)")
    p.add_argument("--channel", default=None, help="bus channel (multicast group, vcan0, /dev/ttyACM0, ...)")
    p.add_argument("--port", type=int, default=None, help="udp_multicast UDP port (python-can default 43113)")
    p.add_argument("--bitrate", type=int, default=None, help="bitrate for socketcan/slcan adapters")
    p.add_argument("--max-speed", action="store_true", help="no pacing: send as fast as the bus takes it")
    p.add_argument("--rate-limit", type=float, default=None, metavar="FPS",
                   help="cap in frames per wall second (e.g. to protect a slow udp_multicast receiver)")


def _build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="trey-sim", description="trey-edge virtual car")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="simulate days of driving onto a bus")
    _bus_args(r)
    r.add_argument("--scenario", default="healthy", help="healthy | aging | sensor-faults | busy-bus")
    r.add_argument("--days", type=int, default=30)
    r.add_argument("--start", type=date.fromisoformat, default=date(2024, 1, 1), help="first day (UTC), YYYY-MM-DD")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--speed", type=float, default=86400.0, help="simulated seconds per wall second (default 86400)")
    r.add_argument("--truth", default=None, help="write ground-truth daily rows (CSV) and <stem>.faults.json")
    r.add_argument("--record", default=None, help="also record every frame to a python-can log (.log, .asc, ...)")
    r.add_argument("--battery-age-days", type=int, default=0,
                   help="start with a battery installed this many days before --start")
    r.add_argument("--battery-cycles", type=float, default=None,
                   help="lifetime cycles already used at start (IBS counter set accordingly); default: "
                        "what the usage model gives over --battery-age-days")
    r.add_argument("--battery-id", type=int, default=None, help="battery id (default derived from --seed)")
    r.add_argument("--replace-battery-day", type=int, default=None, metavar="N",
                   help="install a new battery (new id, counter 0) at midnight starting day N of the run")
    r.add_argument("--drive-period", type=int, default=60, metavar="S", help="frame-set period while driving (s)")
    r.add_argument("--busy-frames", type=int, default=None, help="unrelated frames after every frame set")
    r.add_argument("--dbc", default=None, help="DBC file (default: the agent's)")
    r.add_argument("--signal-map", default=None, help="signal map TOML (default: the agent's)")

    p = sub.add_parser("replay", help="send a recorded python-can log onto a bus")
    p.add_argument("log", help="recorded log file (.log, .asc, .blf, ...)")
    _bus_args(p)
    p.add_argument("--speed", type=float, default=1.0, help="recorded seconds per wall second (default 1)")

    v = sub.add_parser("vehicle", help="a shipped vehicle profile's car (production DBC, sleeping bus)")
    v.add_argument("profile", help="vw_mqb | bmw_e9x_e8x")
    _bus_args(v)
    v.add_argument("--days", type=int, default=7)
    v.add_argument("--start", type=date.fromisoformat, default=date(2024, 5, 6), help="first day (UTC), YYYY-MM-DD")
    v.add_argument("--seed", type=int, default=1)
    v.add_argument("--speed", type=float, default=86400.0, help="simulated seconds per wall second")
    v.add_argument("--record", default=None, help="also record every frame to a python-can log")

    sub.add_parser("scenarios", help="list scenarios")
    return ap


class _Stop:
    def __init__(self):
        self.signum = None
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, self._handle)

    def _handle(self, signum, frame):
        self.signum = signum

    def __call__(self) -> bool:
        return self.signum is not None

    @property
    def code(self) -> int:
        return 0 if self.signum is None else 128 + self.signum


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.command == "scenarios":
        from can_sim.scenarios import SCENARIOS
        for s in SCENARIOS.values():
            print(f"{s.name:14s} {s.description}")
        return 0

    from can_sim.runner import open_bus, replay, send_stream
    speed = None if args.max_speed else args.speed
    if speed is not None and speed <= 0:
        log.error("--speed must be > 0")
        return 2
    try:
        if args.command == "run":
            from can_sim.simulator import Simulator
            sim = Simulator(args.scenario, args.seed, args.start, args.days,
                            battery_age_days=args.battery_age_days, battery_cycles=args.battery_cycles,
                            replace_battery_day=args.replace_battery_day, drive_period_s=args.drive_period,
                            busy_frames=args.busy_frames, battery_id=args.battery_id,
                            dbc=args.dbc, signal_map=args.signal_map)
        elif args.command == "vehicle":
            from datetime import datetime, time, timezone

            from can_sim.production import profile_car
            if args.days < 1:
                raise ValueError("--days must be >= 1")
            car = profile_car(args.profile, int(datetime.combine(args.start, time(0), tzinfo=timezone.utc).timestamp()),
                              args.days, seed=args.seed)
        bus = open_bus(args.interface, args.channel, port=args.port, bitrate=args.bitrate)
    except Exception as exc:   # bad scenario/DBC/map, bus that cannot open: one clear line
        log.error("%s", exc)
        return 2
    stop = _Stop()
    try:
        if args.command == "run":
            stats = send_stream(bus, sim.frames(), speed=speed, record=args.record,
                                rate_limit=args.rate_limit, should_stop=stop)
            if args.truth:
                # After an interrupted run: the truth of the days closed so far.
                sim.write_truth(args.truth, so_far=stats.stopped)
            log.info("run %s seed=%d: %d days, %d frames in %.1f s wall%s", args.scenario, args.seed, args.days,
                     stats.frames, stats.wall_s, " (interrupted)" if stats.stopped else "")
        elif args.command == "vehicle":
            stats = send_stream(bus, ((m.timestamp, m) for m in car.frames()), speed=speed, record=args.record,
                                rate_limit=args.rate_limit, should_stop=stop)
            log.info("vehicle %s seed=%d: %d days, %d frames in %.1f s wall%s", args.profile, args.seed, args.days,
                     stats.frames, stats.wall_s, " (interrupted)" if stats.stopped else "")
        else:
            stats = replay(args.log, bus, speed=speed, rate_limit=args.rate_limit, should_stop=stop)
            log.info("replayed %d frames from %s in %.1f s wall%s", stats.frames, args.log, stats.wall_s,
                     " (interrupted)" if stats.stopped else "")
    except FileNotFoundError as exc:
        log.error("%s", exc)
        return 2
    finally:
        if bus is not None:
            bus.shutdown()
    if stats.send_errors:
        log.warning("%d frames could not be sent", stats.send_errors)
    return stop.code


if __name__ == "__main__":
    sys.exit(main())
