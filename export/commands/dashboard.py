"""trey-export dashboard --lake URI [--listen 127.0.0.1:8090] [--demo]: the fleet dashboard.

A read-only web app over the lake (docs/lake.md) for fleet operations, service planners and
data scientists; see export/dashboard/server.py for the routes and export/dashboard/queries.py
for what each number means. `--demo` first writes a seeded demo lake (export/dashboard/
demo_lake.py) into --lake (default: a directory under the system temp dir), unless one with the
same size and seed is already there.

Shared deployment: bind elsewhere with --listen 0.0.0.0:8090 and protect it with a bearer token
(--token, or TREY_DASHBOARD_TOKEN) and/or basic auth (--basic-auth user:password, or
TREY_DASHBOARD_BASIC); the dashboard refuses a non-loopback address without one of them.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)


def configure(p) -> None:
    p.add_argument("--lake", help="lake root (path, file://, s3a://); default with --demo: a temp dir")
    p.add_argument("--listen", default="127.0.0.1:8090", help="HOST:PORT (default 127.0.0.1:8090, loopback)")
    p.add_argument("--demo", action="store_true", help="generate a seeded demo lake into --lake first")
    p.add_argument("--vehicles", type=int, default=2000, help="--demo fleet size (default 2000)")
    p.add_argument("--days", type=int, default=730, help="--demo days of history (default 730)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--token", default=os.environ.get("TREY_DASHBOARD_TOKEN"),
                   help="require this bearer token (or TREY_DASHBOARD_TOKEN)")
    p.add_argument("--basic-auth", default=os.environ.get("TREY_DASHBOARD_BASIC"), metavar="USER:PASSWORD",
                   help="require HTTP basic auth (or TREY_DASHBOARD_BASIC)")


def _listen(s: str) -> tuple[str, int]:
    host, sep, port = s.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen {s!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def demo_lake(lake: str, vehicles: int, days: int, seed: int) -> str:
    """Generate the demo lake unless the same one is already there (a marker records it)."""
    from export.dashboard import demo_lake as gen
    root = Path(lake)
    marker = root / "_demo.json"
    want = {"vehicles": vehicles, "days": days, "seed": seed, "end": gen.END.isoformat()}
    if marker.exists():
        try:
            if {k: v for k, v in json.loads(marker.read_text()).items() if k in want} == want:
                log.info("demo lake already at %s", root)
                return str(root)
        except ValueError:
            pass
    elif root.is_dir() and any((root / t).exists() for t in ("daily", "alerts", "status", "forecasts", "compliance")):
        raise ValueError(f"--lake {lake}: holds lake tables that are not a demo lake; --demo would replace "
                         "them (give --demo an empty or new directory)")
    started = time.monotonic()
    log.info("generating a demo lake: %d vehicles x %d days into %s", vehicles, days, root)
    info = gen.generate(root, vehicles=vehicles, days=days, seed=seed,
                        progress=lambda t, n: log.info("  day %d / %d", t, n))
    marker.write_text(json.dumps(want | {"rows": info["rows"], "bytes": gen.lake_bytes(root)}))
    log.info("demo lake written in %.0f s: %s", time.monotonic() - started, info["rows"])
    return str(root)


def main(args) -> int:
    try:
        host, port = _listen(args.listen)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.basic_auth is not None and ":" not in args.basic_auth:
        print("error: --basic-auth: expected USER:PASSWORD", file=sys.stderr)
        return 2
    if not _loopback(host) and not (args.token or args.basic_auth):
        print(f"error: --listen {args.listen}: not a loopback address; set --token or --basic-auth "
              "for a shared deployment", file=sys.stderr)
        return 2
    lake = args.lake
    if args.demo:
        if args.vehicles < 1 or args.days < 60:
            print("error: --demo needs --vehicles >= 1 and --days >= 60", file=sys.stderr)
            return 2
        try:
            lake = demo_lake(lake or os.path.join(tempfile.gettempdir(), "trey-demo-lake"),
                             args.vehicles, args.days, args.seed)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if not lake:
        print("error: --lake is required (or --demo)", file=sys.stderr)
        return 2
    from export.dashboard.server import Dashboard, make_server
    app = Dashboard(lake, token=args.token, basic=args.basic_auth)
    try:
        app.lake()            # build the snapshot before listening (a missing lake is served as a clear page)
    except Exception as exc:
        log.warning("lake not readable yet: %s", exc)
    srv = make_server(app, host, port)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{srv.server_address[1]}/"
    log.info("fleet dashboard on %s (lake %s)", url, lake)
    print(url, flush=True)
    def _term(*_):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, _term)          # finally: below removes the snapshot
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
        app.close()
    return 0
