"""Decode + rollup throughput: replay a large recorded log at max speed, frames/s on one core.

    python -m bench.bench_decode [--days 400] [--scenario sensor-faults] [--seed 1]

The virtual car records `--days` of driving to a candump .log (vehicle-time stamps, the sensor
faults' bad frames included); the log is then pushed through the agent's pipeline as fast as
possible, three ways:
  decode                 Decoder.decode only (compiled shift/mask extractors)
  decode+rollup          + trip segmentation and daily rows (Pipeline without a store)
  decode+rollup+store    the real thing: SQLite WAL store, hourly (vehicle time) checkpoints, rows
  ... +log parsing       the same including python-can's candump parser (can.LogReader)
Target (issue 2): >= 50,000 frames/s for decode + rollup on one core; a fully loaded 500 kbit/s
classic CAN bus carries about 4,000 frames/s. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench import pin_one_core


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="bench_decode")
    ap.add_argument("--days", type=int, default=400)
    ap.add_argument("--scenario", default="sensor-faults")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="best of N passes")
    args = ap.parse_args(sys.argv[1:] if argv is None and __name__ == "__main__" else (argv or []))

    import logging

    import can

    from agent.decode import Decoder
    from agent.reader import Pipeline
    from agent.signal_map import load_signal_map
    from agent.store import StateStore
    from can_sim import Simulator, send_stream

    pin_one_core()
    logging.getLogger("agent").setLevel(logging.ERROR)     # the bad frames are logged once per pass
    smap = load_signal_map()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "drive.log"
        t0 = time.perf_counter()
        st = send_stream(None, Simulator(args.scenario, seed=args.seed, days=args.days).frames(), speed=None,
                         record=log)
        print(f"log: {args.days} days of '{args.scenario}', {st.frames:,} frames, "
              f"{log.stat().st_size / 1e6:.1f} MB candump (recorded in {time.perf_counter() - t0:.1f} s)")
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
            Pipeline(smap, None).feed_many(msgs)

        def with_store():
            with tempfile.TemporaryDirectory() as sd:
                s = StateStore(sd)
                p = Pipeline(smap, s)
                p.feed_many(msgs)
                p.close()
                s.close()

        def from_log():
            with tempfile.TemporaryDirectory() as sd:
                s = StateStore(sd)
                p = Pipeline(smap, s)
                p.feed_many(m for m in can.LogReader(str(log)) if not m.is_error_frame)
                p.close()
                s.close()

        print(f"decode                          {best(decode_only):>10,.0f} frames/s")
        print(f"decode+rollup                   {best(no_store):>10,.0f} frames/s")
        print(f"decode+rollup+store             {best(with_store):>10,.0f} frames/s")
        print(f"decode+rollup+store+log parsing {best(from_log):>10,.0f} frames/s")


if __name__ == "__main__":
    main()
