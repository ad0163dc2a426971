"""`trey-agent forecast [--bundle DIR] HISTORY.csv` — one JSON line per battery.

The history is raw daily rows in the seed schema (defects allowed: duplicates, 12-hourly
rows, gaps); the same cleaning as training is applied. A malformed row is an error that
names its line (exit 2); a bundle that does not verify is refused (exit 3).
"""

from __future__ import annotations

import json
import sys


def configure(p) -> None:
    p.add_argument("history", help="daily-history CSV (seed schema), any number of batteries; - = stdin")
    p.add_argument("--bundle", default=None, help="battery model bundle dir or .tar (default: shipped bundle)")
    p.add_argument("--trusted-keys", nargs="*", default=None,
                   help="trusted public key file(s)/dir(s) (default: the DEVELOPMENT key)")


def main(args) -> int:
    import csv
    import io

    from agent.bundle import DEFAULT_BATTERY_BUNDLE, BundleError, verify_bundle
    from agent.cleaning import REQUIRED_COLUMNS, CleaningError, clean_history
    from agent.forecast import BatteryForecaster

    try:
        bundle = verify_bundle(args.bundle or DEFAULT_BATTERY_BUNDLE, args.trusted_keys or None)
    except BundleError as exc:
        print(f"error: bundle refused: {exc}", file=sys.stderr)
        return 3
    forecaster = BatteryForecaster.from_bundle(bundle)
    try:
        fh = sys.stdin if args.history == "-" else open(args.history, newline="", encoding="utf-8")
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with fh:
        reader = csv.DictReader(fh if args.history != "-" else io.StringIO(fh.read()))
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        try:
            if missing:
                raise CleaningError(1, f"header lacks required column(s) {missing}")
            histories = list(clean_history(reader).batteries.values())
        except CleaningError as exc:
            print(f"error: {args.history}: {exc}", file=sys.stderr)
            return 2
    for answer in forecaster.forecast_histories(histories):
        print(json.dumps(answer))
    return 0
