"""Fleet dashboard benchmark (prints numbers, asserts nothing).

1. A generated lake of 20,000 vehicles x 2 years (export/dashboard/demo_lake.py: daily rows from
   the battery fleet's usage model, alerts/status/forecasts/compliance in docs/lake.md's layout),
   cached under the temp dir (or --lake) so later runs skip the generation; size on disk and rows.
2. DuckDB straight over the Parquet files (no snapshot) for three of the views' questions:
   why the dashboard precomputes.
3. The snapshot build (what the dashboard does at start and after the lake changes).
4. p50 / p95 / max latency of every API endpoint through the real HTTP server (sequential
   requests with varied parameters), then 4 clients at once.

    python -m bench.bench_dashboard [--vehicles 20000] [--days 730] [--requests 30] [--lake DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def _lake(path: Path, vehicles: int, days: int, seed: int) -> dict:
    from export.dashboard import demo_lake
    marker = path / "_bench.json"
    want = {"vehicles": vehicles, "days": days, "seed": seed, "end": demo_lake.END.isoformat()}
    if marker.exists():
        info = json.loads(marker.read_text())
        if {k: info.get(k) for k in want} == want:
            print(f"lake: cached at {path}")
            return info
    print(f"lake: generating {vehicles} vehicles x {days} days into {path} ...", flush=True)
    t = time.monotonic()
    info = demo_lake.generate(path, vehicles=vehicles, days=days, seed=seed)
    info |= want | {"generate_s": round(time.monotonic() - t, 1), "bytes": demo_lake.lake_bytes(path)}
    marker.write_text(json.dumps(info))
    return info


def _pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def _direct(root: Path, reps: int = 3) -> None:
    """The views' heaviest questions asked of the Parquet files directly, per request."""
    import duckdb
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    src = lambda t: f"read_parquet('{root}/{t}/**/*.parquet', hive_partitioning=true)"   # noqa: E731
    questions = {
        "latest status per vehicle (sync health)": f"""
            SELECT count(*), sum(dropped_telemetry) FROM (SELECT * FROM {src('status')}
            QUALIFY row_number() OVER (PARTITION BY vehicle_id ORDER BY "at" DESC) = 1)""",
        "forecast vs realised (join forecasts x daily)": f"""
            SELECT f.model, avg(abs((f.projected_lifetime_cycles_30d - f.lifetime_cycles)
                                    - (d.Lifetime_Cycles_Used - f.lifetime_cycles)))
            FROM {src('forecasts')} f JOIN {src('daily')} d
              ON d.Battery_ID = f.battery_id AND d.Date = f.as_of + 30 GROUP BY 1""",
        "one vehicle's history": f"SELECT count(*) FROM {src('daily')} WHERE vehicle_id = 'V001234'",
    }
    print("\nDuckDB straight over the Parquet files (per request, no snapshot):")
    for name, sql in questions.items():
        ts = []
        for _ in range(reps):
            t = time.monotonic()
            con.execute(sql).fetchall()
            ts.append(time.monotonic() - t)
        print(f"  {name:48s} {1000 * statistics.median(ts):8.0f} ms (median of {reps})")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="bench_dashboard")
    ap.add_argument("--vehicles", type=int, default=20000)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--requests", type=int, default=30, help="requests per endpoint")
    ap.add_argument("--lake", help="lake directory (default: cached under the temp dir)")
    ap.add_argument("--no-direct", action="store_true", help="skip the straight-over-Parquet comparison")
    args = ap.parse_args([] if argv is None else argv)

    root = Path(args.lake or os.path.join(tempfile.gettempdir(), "trey-dashboard-bench",
                                          f"lake-{args.vehicles}x{args.days}-seed{args.seed}"))
    info = _lake(root, args.vehicles, args.days, args.seed)
    rows = info["rows"]
    print(f"lake: {info['vehicles']} vehicles x {info['days']} days, {info['bytes'] / 1e9:.2f} GB of Parquet "
          f"({sum(1 for _ in root.rglob('*.parquet'))} files); rows: " + ", ".join(f"{k} {v:,}" for k, v in rows.items())
          + (f"; generated in {info['generate_s']} s" if "generate_s" in info else ""))
    if not args.no_direct:
        _direct(root)

    from export.dashboard.server import Dashboard, make_server
    app = Dashboard(str(root))
    t = time.monotonic()
    lake = app.lake()
    build = time.monotonic() - t
    print(f"\nsnapshot build: {build:.1f} s, {lake.info['snapshot_bytes'] / 1e6:.0f} MB "
          f"(peak RSS so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
    srv = make_server(app, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"

    rng = random.Random(args.seed)
    models = json.loads(urllib.request.urlopen(base + "/api/battery/risk?within=0&limit=1").read())["summary"]["models"]
    vid = lambda: f"V{rng.randint(1, args.vehicles):06d}"   # noqa: E731
    endpoints = {
        "meta": lambda: "/api/meta",
        "overview": lambda: f"/api/overview?days={rng.choice([30, 90, 365, 730])}",
        "overview (kind filter)": lambda: f"/api/overview?days=90&kind={rng.choice(['battery', 'compliance'])}",
        "battery/risk": lambda: f"/api/battery/risk?within={rng.choice([30, 60, 90])}",
        "battery/risk (sort, 1 y)": lambda: "/api/battery/risk?within=365&sort=lifetime_cycles&order=desc",
        "battery/risk (search)": lambda: f"/api/battery/risk?within=3660&q={vid()[:5]}",
        "battery/risk CSV": lambda: "/api/battery/risk?within=90&format=csv&table=risk",
        "battery/accuracy": lambda: "/api/battery/accuracy",
        "battery/accuracy (model, since)": lambda: f"/api/battery/accuracy?model={rng.choice(models)}&since=2026-01-01",
        "compliance": lambda: "/api/compliance",
        "compliance (cause filter)": lambda: f"/api/compliance?cause={rng.choice(['year', 'material', 'condition'])}",
        "vehicle": lambda: f"/api/vehicle?id={vid()}",
        "vehicle (2 y)": lambda: f"/api/vehicle?id={vid()}&days=730",
        "vehicles (search)": lambda: f"/api/vehicles?q={vid()[:6]}",
    }

    def hit(path):
        t = time.monotonic()
        with urllib.request.urlopen(base + path, timeout=60) as r:
            body = r.read()
            assert r.status == 200
        return time.monotonic() - t, len(body)

    print(f"\nHTTP, {args.requests} sequential requests per endpoint (ms):")
    print(f"  {'endpoint':34s} {'p50':>7s} {'p95':>7s} {'max':>7s} {'body':>9s}")
    for name, make in endpoints.items():
        hit(make())       # warm
        res = [hit(make()) for _ in range(args.requests)]
        ts = [1000 * r[0] for r in res]
        print(f"  {name:34s} {_pct(ts, 50):7.1f} {_pct(ts, 95):7.1f} {max(ts):7.1f} {statistics.mean(r[1] for r in res) / 1024:7.0f} kB")

    mix = [m for m in endpoints.values() for _ in range(args.requests)]
    rng.shuffle(mix)
    t = time.monotonic()
    with ThreadPoolExecutor(4) as ex:
        res = list(ex.map(lambda m: hit(m()), mix))
    wall = time.monotonic() - t
    ts = [1000 * r[0] for r in res]
    print(f"\n4 concurrent clients, {len(res)} mixed requests: {len(res) / wall:.0f} req/s, "
          f"p50 {_pct(ts, 50):.0f} ms, p95 {_pct(ts, 95):.0f} ms, max {max(ts):.0f} ms")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    srv.shutdown()
    srv.server_close()
    lake.close()


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])
