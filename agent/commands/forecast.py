"""`trey-agent forecast [--bundle DIR] HISTORY.csv` — one JSON line per battery.

The history is raw daily rows in the seed schema (defects allowed: duplicates, 12-hourly
rows, gaps, sub-daily rows); the same cleaning as training is applied. Input that cannot be
a history is an error naming its line, exit 2, nothing printed: a malformed value, a date
outside 1900..2199 or a battery spanning more than 100 years, a number above 1e9, text that
is not UTF-8, a line over 64 KiB. A battery none of whose rows has a Daily_Cycles_Used value
is reported as {"battery_id", "skipped": "no_cycles", "rows"} (and on stderr) instead of a
forecast. A bundle that does not verify is refused (exit 3). The output is always valid JSON.
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
    from agent.bundle import DEFAULT_BATTERY_BUNDLE, BundleError, verify_bundle
    from agent.cleaning import CleaningError, clean_csv
    from agent.forecast import BatteryForecaster
    from agent.jsonsafe import finite

    try:
        bundle = verify_bundle(args.bundle or DEFAULT_BATTERY_BUNDLE, args.trusted_keys or None)
    except BundleError as exc:
        print(f"error: bundle refused: {exc}", file=sys.stderr)
        return 3
    forecaster = BatteryForecaster.from_bundle(bundle)
    try:
        fh = sys.stdin.buffer if args.history == "-" else open(args.history, "rb")
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        with fh:
            result = clean_csv(fh)
    except (CleaningError, OSError) as exc:
        print(f"error: {args.history}: {exc}", file=sys.stderr)
        return 2
    for answer in forecaster.forecast_batch(result.batch):
        print(json.dumps(finite(answer), allow_nan=False))
    for bid, rows in result.skipped.items():
        print(f"warning: battery {bid}: no Daily_Cycles_Used value in its {rows} row(s); not forecast",
              file=sys.stderr)
        print(json.dumps({"battery_id": bid, "skipped": "no_cycles", "rows": rows}))
    return 0
