"""`trey-agent replay LOG --config FILE [--state DIR]`: a recorded CAN log through the agent.

Any format python-can reads (candump `.log`, `.asc`, `.blf`, `.trc`, `.csv`, ...) goes through
the same pipeline as `run` — decode, rollup, store, battery forecast and alerts — at full speed
and on the log's own timestamps (the clock when the map has no time signal), into the state dir
(`--state` overrides `[state] dir`). `[can] interface/channel` are ignored; the HMI and MQTT are
off (a replay is offline; `run` syncs the stored rows later). Re-running a log into the same
state continues after what was already processed (the checkpoint's resume marker).

Ends with a one-screen summary: frames, days closed, drops by reason, signals never seen.
Exit codes: 0 success; 2 a bad config, signal map or log (one clear line on stderr).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time

log = logging.getLogger("agent.replay")


def configure(parser) -> None:
    parser.add_argument("log", metavar="LOG", help="recorded CAN log (.log candump, .asc, .blf, .trc, .csv, ...)")
    parser.add_argument("--config", required=True, help="the agent config `run` takes (TOML)")
    parser.add_argument("--state", default="", help="state dir (default: the config's [state] dir)")


def _open_log(path: str):
    import can
    if not os.path.isfile(path):
        raise ValueError(f"log not found: {path}")
    # The recording's own time is the clock without a time signal: ASC files count from the
    # "Begin Triggerblock" date only when asked to.
    kw = {"relative_timestamp": False} if path.lower().endswith(".asc") else {}
    try:
        return can.LogReader(path, **kw)
    except Exception as exc:          # unknown suffix, unreadable header
        raise ValueError(f"cannot read log {path}: {exc}") from None


def main(args) -> int:
    from agent.config import ConfigError, HmiConfig, load_config
    from agent.daemon import Agent
    from agent.signal_map import SignalMapError

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"trey-agent replay: {exc}", file=sys.stderr)
        return 2
    cfg = dataclasses.replace(
        cfg, hmi=HmiConfig(enabled=False), mqtt=None,
        can=dataclasses.replace(cfg.can, interface="virtual", channel=f"trey-replay-{os.getpid()}"),
        state=dataclasses.replace(cfg.state, dir=args.state or cfg.state.dir))
    logging.getLogger().setLevel(cfg.log.level.upper())
    try:
        reader = _open_log(args.log)
    except ValueError as exc:
        print(f"trey-agent replay: {exc}", file=sys.stderr)
        return 2
    agent = Agent(cfg)
    try:
        agent.start()
    except (SignalMapError, OSError, ValueError, ImportError) as exc:
        print(f"trey-agent replay: cannot start: {exc}", file=sys.stderr)
        agent.shutdown()
        return 2
    p = agent.pipeline
    p.seen = set()
    days: list[str] = []
    p.add_day_closed_listener(lambda row: days.append(row["Date"]))
    read = 0
    error = None
    t0 = time.monotonic()
    try:
        feed = p.feed
        for msg in reader:
            if msg.is_error_frame:
                p.error_frames += 1
            else:
                feed(msg)
            read += 1
            if read & 0x3FFF == 0 and agent._stop.is_set():
                break
    except Exception as exc:          # a damaged record: keep what was read, say where it stopped
        error = f"log unreadable after {read} frames: {exc}"
    finally:
        elapsed = time.monotonic() - t0
        active = agent.alerts.list(active_only=True) if agent.alerts else []
        counters = p.counters()
        never = sorted(set(p.smap.bindings) - p.seen)
        agent.frames = read
        agent.shutdown()
    _summary(args.log, read, elapsed, days, counters, never, active, p.skipped)
    if error:
        print(f"trey-agent replay: {error}", file=sys.stderr)
        return 2
    return 0


def _summary(path, read, elapsed, days, counters, never, active, skipped) -> None:
    out = sys.stdout
    rate = read / elapsed if elapsed > 0 else 0.0
    print(f"replayed {path}: {read} frames in {elapsed:.1f} s ({rate:,.0f} frames/s)", file=out)
    if skipped:
        print(f"  already processed before (resumed from the checkpoint): {skipped} frames", file=out)
    span = f" ({days[0]} .. {days[-1]})" if days else ""
    print(f"  days closed: {len(days)}{span}", file=out)
    drops = {k: v for k, v in counters.items() if k not in ("frames", "error_frames") and v}
    print("  drops: " + (", ".join(f"{k}={v}" for k, v in sorted(drops.items())) or "none"), file=out)
    if counters.get("error_frames"):
        print(f"  bus error frames: {counters['error_frames']}", file=out)
    print("  signals never seen: " + (", ".join(never) or "none"), file=out)
    print(f"  active alerts: {len(active)}" + "".join(f"\n    {a.get('key')}: {a.get('title')}" for a in active[:5]),
          file=out)
