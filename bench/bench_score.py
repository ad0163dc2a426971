"""Fleet batch scoring and compaction on Spark, in one run on one generated fleet:

  * `trey-agent forecast` on the fleet's CSV (the car's code, one process): batteries/s
  * the batch form in-process, one core (agent.cleaning.clean_columns + forecast_batch over
    the lake's typed daily rows, no Spark): batteries/s per core
  * `score battery --lake` on local[1] and local[2] (job time, session start excluded): the
    ratio shows scaling; `score battery --history CSV` on local[2] vs trey-agent forecast
  * `lake compact` of the fleet's rows landed by ingest workers: rows/s

    python -m bench.bench_score [--batteries 200] [--seed 5]

Histories are the generator's (~4-5 years per battery). Prints one line per figure and a
JSON summary."""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _land(rows, lake) -> int:
    from agent import topics as T
    from agent.schema import DAILY_COLUMNS
    from export.ingest import LandingWriter
    w1, w2 = LandingWriter(lake, "w1"), LandingWriter(lake, "w2")
    items = []
    for r in rows:
        if len(r["Date"]) != 10:                  # the car sends days
            continue
        vid = f"CAR-{int(r['Battery_ID']) % 97}"
        row = {c: (float(r[c]) if r.get(c) not in (None, "") else None) for c in DAILY_COLUMNS[2:]}
        row.update(Date=r["Date"], Battery_ID=r["Battery_ID"])
        items.append(("daily", vid, T.daily_topic(vid), json.dumps(T.daily_payload(vid, row)), time.time()))
    for i in range(0, len(items), 5000):          # batches as two workers would write them
        (w1 if (i // 5000) % 2 else w2).write(items[i:i + 5000])
    return len(items)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batteries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=5)
    a = ap.parse_known_args(argv if argv is not None else sys.argv[1:])[0]
    import logging
    logging.basicConfig(level=logging.INFO, format="  %(message)s")      # the jobs' one line per stage
    from export.battery.fleet import RAW_FILE, generate_fleet
    from export.lake.spark import session
    res = {}
    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        tmp = Path(tmp)
        generate_fleet(a.batteries, a.seed, tmp / "fleet")
        csv_path = tmp / "fleet" / RAW_FILE
        with open(csv_path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        n_bat = len({r["Battery_ID"] for r in rows})
        print(f"fleet: {n_bat} batteries, {len(rows)} rows ({len(rows) / n_bat:.0f} per battery)", flush=True)

        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "agent.cli", "forecast", str(csv_path)], capture_output=True)
        dt_cli = time.perf_counter() - t
        assert r.returncode == 0, r.stderr[-500:]
        res["trey_agent_forecast_batteries_per_s"] = round(n_bat / dt_cli, 1)
        print(f"trey-agent forecast (CSV, one process):   {n_bat / dt_cli:8.1f} batteries/s  ({dt_cli:.1f} s)")

        lake = tmp / "lake"
        landed = _land(rows, lake)
        spark = session("local[2]", "bench-score")
        from export.lake.compact import compact
        t = time.perf_counter()
        st = compact(spark, str(lake))
        dt_c = time.perf_counter() - t
        res["compaction_rows_per_s_local2"] = round(landed / dt_c, 1)
        print(f"lake compact local[2]:                    {landed / dt_c:8.1f} rows/s  ({landed} rows, {dt_c:.1f} s)")
        assert st["rows"]["daily"] == landed

        # the batch form on one core, no Spark: typed columns of the curated table
        import pyarrow.dataset as ds

        from agent.cleaning import NUMERIC_COLUMNS, clean_columns
        from agent.forecast import BatteryForecaster
        from export.lake import tables as LT
        files = [str(f) for f in (lake / "daily").glob("date=*/*.parquet")]
        tb = ds.dataset(files, format="parquet", schema=LT.SCHEMAS[LT.DAILY]).to_table().sort_by(
            [("vehicle_id", "ascending"), ("Battery_ID", "ascending"), ("Date", "ascending")])
        from export.lake.score_battery import battery_codes
        codes, names = battery_codes(tb)
        days = tb.column("Date").cast("int32").to_numpy().astype(np.int64)
        vals = {c: tb.column(c).cast("float64").fill_null(np.nan).to_numpy() for c in NUMERIC_COLUMNS}
        fc = BatteryForecaster.default()
        fc.forecast_batch(clean_columns(codes[:5000], days[:5000], {c: v[:5000] for c, v in vals.items()},
                                        names=names)[0])                      # warm-up
        t = time.perf_counter()
        batch, _, _ = clean_columns(codes, days, vals, names=names)
        t_clean = time.perf_counter() - t
        answers = fc.forecast_batch(batch)
        dt_b = time.perf_counter() - t
        res["batch_form_batteries_per_s_one_core"] = round(len(answers) / dt_b, 1)
        print(f"batch form, in-process, one core:         {len(answers) / dt_b:8.1f} batteries/s  "
              f"(cleaning {t_clean / len(answers) * 1e3:.2f} ms, rest {(dt_b - t_clean) / len(answers) * 1e3:.2f} ms"
              f" per battery)")

        from export.lake.score_battery import score_battery
        t = time.perf_counter()
        score_battery(spark, str(tmp / "out_csv"), history=str(csv_path))
        dt_h = time.perf_counter() - t
        res["score_battery_csv_local2_batteries_per_s"] = round(n_bat / dt_h, 1)
        print(f"score battery --history CSV local[2]:     {n_bat / dt_h:8.1f} batteries/s  ({dt_h:.1f} s)")
        for master in ("local[2]", "local[1]"):
            if master == "local[1]":
                spark.stop()
                spark = session("local[1]", "bench-score")
            tag = master.replace("[", "").replace("]", "")                    # no glob characters in paths
            score_battery(spark, str(tmp / f"warm-{tag}"), lake=str(lake))   # executors' python + ORT warm
            t = time.perf_counter()
            s = score_battery(spark, str(tmp / f"out-{tag}"), lake=str(lake))
            dtm = time.perf_counter() - t
            res[f"score_battery_lake_{master}_batteries_per_s"] = round(s["batteries"] / dtm, 1)
            print(f"score battery --lake {master}:            {s['batteries'] / dtm:8.1f} batteries/s  ({dtm:.1f} s)")
        spark.stop()
    r1, r2 = res["score_battery_lake_local[1]_batteries_per_s"], res["score_battery_lake_local[2]_batteries_per_s"]
    res["scaling_local2_over_local1"] = round(r2 / r1, 2)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
