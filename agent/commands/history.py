"""`trey-agent history --state DIR [--format csv|jsonl] [--battery ID]`: the stored daily rows.

CSV (default) has exactly the seed + health column names of agent.schema.DAILY_COLUMNS;
empty cells are unknown values (e.g. no crank that day)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def configure(parser) -> None:
    parser.add_argument("--state", required=True, help="the agent's state directory")
    parser.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    parser.add_argument("--battery", default=None, help="only this battery id")


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(round(v, 6))
    return str(v)


def main(args) -> int:
    from agent.schema import DAILY_COLUMNS
    from agent.store import StateStore

    if not (Path(args.state) / "state.db").is_file():
        print(f"trey-agent history: no agent state in {args.state}", file=sys.stderr)
        return 2
    store = StateStore(args.state)
    try:
        rows = store.history(battery_id=args.battery)
    finally:
        store.close()
    out = sys.stdout
    if args.format == "jsonl":
        for r in rows:
            out.write(json.dumps(r) + "\n")
    else:
        w = csv.writer(out, lineterminator="\n")
        w.writerow(DAILY_COLUMNS)
        for r in rows:
            w.writerow([_cell(r[c]) for c in DAILY_COLUMNS])
    return 0
