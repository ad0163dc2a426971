"""Helpers for the bus tests (owner: bus reader): row comparison, unique multicast groups, configs."""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

from agent.schema import DAILY_COLUMNS, STRING_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
FLOATS = ("Daily_Trip_Duration", "Daily_Cycles_Used", "Lifetime_Cycles_Used", "Min_Cranking_Voltage",
          "Resting_Voltage", "Min_Temperature", "Max_Temperature")


def group() -> str:
    """A multicast group unique to this test run (parallel tests must not hear each other)."""
    r = random.Random(os.getpid() ^ random.getrandbits(32))
    return f"239.{r.randint(64, 250)}.{r.randint(1, 250)}.{r.randint(1, 250)}"


def pump(pipeline, sender, max_frames: int = 5000, drain_s: float = 0.3) -> None:
    """Let the agent's pipeline read while the sender thread runs, then until the bus has been
    quiet for drain_s (frames still in flight are read, not lost)."""
    while sender.is_alive():
        pipeline.poll(0.05, max_frames)
    while pipeline.poll(drain_s, max_frames):
        pass


def read_csv_rows(text_or_path) -> list[dict]:
    """Rows of a daily-rows CSV (history output or sim truth), typed like the store's rows."""
    if isinstance(text_or_path, Path):
        text_or_path = text_or_path.read_text()
    rd = csv.DictReader(text_or_path.splitlines())
    assert tuple(rd.fieldnames) == DAILY_COLUMNS
    out = []
    for r in rd:
        row = {}
        for c in DAILY_COLUMNS:
            v = r[c]
            if v == "":
                row[c] = None
            elif c in STRING_COLUMNS:
                row[c] = v
            elif c in FLOATS:
                row[c] = float(v)
            else:
                row[c] = int(v)
        out.append(row)
    return out


def diff_rows(got: list[dict], want: list[dict], rel: float = 1e-6) -> list[str]:
    """Differences between two row lists (exact for ints/dates, relative tolerance for floats)."""
    problems = []
    if len(got) != len(want):
        problems.append(f"{len(got)} rows, expected {len(want)}")
    for a, b in zip(got, want):
        for c in DAILY_COLUMNS:
            x, y = a[c], b[c]
            if c in FLOATS and x is not None and y is not None:
                if abs(x - y) > rel * max(1.0, abs(y)):
                    problems.append(f"{b['Date']} {c}: {x} != {y}")
            elif x != y:
                problems.append(f"{b['Date']} {c}: {x!r} != {y!r}")
    return problems


def write_config(path: Path, state: Path, interface: str, channel: str, **can) -> Path:
    lines = ['[vehicle]', 'id = "TEST-1"', '[can]', f'interface = "{interface}"', f'channel = "{channel}"']
    lines += [f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in can.items()]
    lines += ['[state]', f'dir = "{state}"', '[hmi]', 'enabled = false']
    path.write_text("\n".join(lines).replace("'", '"') + "\n")
    return path
