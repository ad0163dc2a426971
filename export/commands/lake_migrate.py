"""trey-export lake migrate --from OLD_DATASET --lake URI: the old CSV ingest layout
(daily/ + alerts/ CSVs, _ingest.sqlite) -> landing files of the lake; then run
`trey-export lake compact` (export/lake/legacy.py)."""

from __future__ import annotations

import json
import sys


def configure(p) -> None:
    p.add_argument("--from", dest="source", required=True, help="dataset directory of the old CSV layout")
    p.add_argument("--lake", required=True, help="lake root")


def main(args) -> int:
    from export.lake.legacy import is_legacy, migrate
    if not is_legacy(args.source):
        print(f"error: --from {args.source}: not a dataset of the old CSV layout", file=sys.stderr)
        return 2
    print(json.dumps(migrate(args.source, args.lake)))
    return 0
