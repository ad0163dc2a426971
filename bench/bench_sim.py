"""Virtual car throughput: frames generated (+ truth) per second at max speed, on one core.

    python -m bench.bench_sim [--days 400]

  generate   Simulator.frames() for each scenario (encoding via cantools + truth rollup)
  record     the same into a candump .log (send_stream, no bus)
  virtual    onto a python-can `virtual` bus with a receiver draining it
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import can

from can_sim import Simulator, send_stream


def _gen(scenario: str, days: int) -> tuple[int, float]:
    sim = Simulator(scenario, seed=7, days=days)
    t0 = time.perf_counter()
    n = sum(1 for _ in sim.frames())
    return n, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench_sim")
    ap.add_argument("--days", type=int, default=400)
    args = ap.parse_args(argv)
    for sc in ("healthy", "aging", "sensor-faults", "busy-bus"):
        n, dt = _gen(sc, args.days)
        print(f"generate {sc:14s} {args.days} days: {n:8d} frames ({n / args.days:6.0f}/day) in {dt:5.2f} s "
              f"= {n / dt:8.0f} frames/s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        st = send_stream(None, Simulator("aging", seed=7, days=args.days).frames(), speed=None,
                         record=Path(tmp) / "drive.log")
        size = (Path(tmp) / "drive.log").stat().st_size
        print(f"record   aging {args.days} days to .log: {st.frames} frames in {st.wall_s:.2f} s "
              f"= {st.frames / st.wall_s:.0f} frames/s, {size / 1e6:.1f} MB")
    chan = f"bench-sim-{time.time()}"
    rx, tx = can.Bus(interface="virtual", channel=chan), can.Bus(interface="virtual", channel=chan)
    got = [0]
    done = threading.Event()

    def drain():
        while not done.is_set() or rx.recv(0) is not None:
            if rx.recv(0.05) is not None:
                got[0] += 1

    th = threading.Thread(target=drain, daemon=True)
    th.start()
    st = send_stream(tx, Simulator("aging", seed=7, days=min(args.days, 100)).frames(), speed=None)
    done.set()
    th.join(10)
    print(f"virtual  aging {min(args.days, 100)} days: {st.frames} frames sent in {st.wall_s:.2f} s "
          f"= {st.frames / st.wall_s:.0f} frames/s")
    tx.shutdown()
    rx.shutdown()


if __name__ == "__main__":
    main()
