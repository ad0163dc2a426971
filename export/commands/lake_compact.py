"""trey-export lake compact --lake URI [--master M] [--expire-landing-days N]: landing/ ->
the curated daily, alerts and status tables, exactly once by msg_id (export/lake/compact.py).
Prints one JSON line of counts."""

from __future__ import annotations

import json


def configure(p) -> None:
    from export.lake.spark import add_master_arg
    p.add_argument("--lake", required=True, help="lake root (path, file://, s3a://, abfss://)")
    add_master_arg(p)
    p.add_argument("--expire-landing-days", type=float, default=None,
                   help="also delete landing files already compacted and older than N days")


def main(args) -> int:
    from export.lake.compact import compact
    from export.lake.fs import LakeFS, uri
    from export.lake.spark import session
    if uri(args.lake).startswith("file:"):
        LakeFS(None, args.lake).require_root()          # a wrong local path: say so before starting Spark
    spark = session(args.master, "trey-export lake compact")
    print(json.dumps(compact(spark, args.lake, expire_landing_days=args.expire_landing_days)))
    return 0
