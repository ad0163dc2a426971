"""Replay throughput of production-DBC logs next to the shipped DBC's: frames/s on one core.

    python -m bench.bench_replay [--days 14] [--seed 1] [--repeat 3]

Logs: the shipped trey DBC (the virtual car, `healthy`), and the two shipped vehicle profiles
driven by can_sim.production's sleeping-bus car: BMW E90 (big-endian signals, which used to fall
back to cantools' generic decode) and VW MQB (terminal-bit ignition and a validity signal: the
transform path). Each is recorded to a candump .log, then pushed through the agent:
  decode             Decoder.decode only (compiled extractors, transforms)
  decode+rollup      + trips and daily rows (Pipeline without a store; the issue's target: >= 200,000)
  replay             the `trey-agent replay` path in-process: python-can's candump parser, SQLite
                     store with checkpoints (no forecasting)
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench import pin_one_core


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="bench_replay")
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="best of N passes")
    args = ap.parse_args(sys.argv[1:] if argv is None and __name__ == "__main__" else (argv or []))

    import can

    from agent.decode import Decoder
    from agent.reader import Pipeline
    from agent.rollup import BatteryInfo
    from agent.signal_map import load_signal_map
    from agent.store import StateStore
    from agent.vehicles import profile_paths
    from can_sim import Simulator
    from can_sim.production import profile_car

    pin_one_core()
    logging.getLogger("agent").setLevel(logging.ERROR)
    start = int(datetime(2024, 5, 6, tzinfo=timezone.utc).timestamp())
    cases = [
        ("shipped trey DBC (sim)", load_signal_map(), None,
         lambda: (m for _, m in Simulator("healthy", seed=args.seed, days=args.days * 10).frames())),
        ("BMW E90 (big-endian)", load_signal_map(*profile_paths("bmw_e9x_e8x")), BatteryInfo("B", 300, 70.0, 19700),
         lambda: profile_car("bmw_e9x_e8x", start, args.days, seed=args.seed).frames()),
        ("VW MQB (transforms)", load_signal_map(*profile_paths("vw_mqb")), BatteryInfo("B", 300, 70.0, 19700),
         lambda: profile_car("vw_mqb", start, args.days, seed=args.seed).frames()),
    ]
    print(f"{'log':<26} {'frames':>9} {'decode':>11} {'decode+rollup':>14} {'replay':>10}   (frames/s, one core)")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, smap, battery, frames) in enumerate(cases):
            log = Path(tmp) / f"case{i}.log"
            w = can.Logger(str(log))
            for m in frames():
                w.on_message_received(m)
            w.stop()
            msgs = [m for m in can.LogReader(str(log)) if not m.is_error_frame]
            n = len(msgs)

            def best(fn):
                times = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    fn()
                    times.append(time.perf_counter() - t)
                return n / min(times)

            def decode_only():
                d = Decoder(smap).decode
                for m in msgs:
                    d(m)

            def no_store():
                Pipeline(smap, None, battery=battery).feed_many(msgs)

            def replay():
                with tempfile.TemporaryDirectory() as sd:
                    s = StateStore(sd)
                    p = Pipeline(smap, s, battery=battery)
                    p.feed_many(m for m in can.LogReader(str(log)) if not m.is_error_frame)
                    p.close()
                    s.close()

            print(f"{name:<26} {n:>9,} {best(decode_only):>11,.0f} {best(no_store):>14,.0f} {best(replay):>10,.0f}")


if __name__ == "__main__":
    main()
