"""trey-export score battery (--lake URI | --history CSV) --out URI [--master M] [--bundle B]

Fleet batch forecasting on Spark with the agent's own bundle and code
(export/lake/score_battery.py): OUT/forecasts/ (Parquet, the fields of `trey-agent forecast`
plus vehicle_id and scored_at) and OUT/forecast_summary.csv (per as_of day: batteries,
alerts, fallbacks). Prints one JSON line. Exit 2 on unusable input, 3 on a refused bundle."""

from __future__ import annotations

import json
import sys


def configure(p) -> None:
    from export.lake.spark import add_master_arg
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--lake", help="lake root: score its curated daily table")
    src.add_argument("--history", help="a seed-schema history CSV (as trey-agent forecast reads)")
    p.add_argument("--out", required=True, help="output root (the lake itself, or another directory/URI)")
    p.add_argument("--bundle", default=None, help="battery bundle dir or .tar (default: shipped)")
    p.add_argument("--trusted-keys", nargs="*", default=None, help="public key file(s)/dir(s) (default: development)")
    add_master_arg(p)


def main(args) -> int:
    from agent.bundle import BundleError
    from agent.cleaning import CleaningError
    from export.lake.score_battery import score_battery
    from export.lake.spark import session
    spark = session(args.master, "trey-export score battery")
    try:
        stats = score_battery(spark, args.out, lake=args.lake, history=args.history, bundle=args.bundle,
                              trusted_keys=args.trusted_keys or None)
    except BundleError as exc:
        print(f"error: bundle refused: {exc}", file=sys.stderr)
        return 3
    except CleaningError as exc:
        print(f"error: {args.lake or args.history}: {str(exc).removeprefix('line 0: ')}", file=sys.stderr)
        return 2
    print(json.dumps(stats))
    return 0
