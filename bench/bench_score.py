"""Fleet batch scoring and compaction on Spark, in one run on one generated fleet:

  * `trey-agent forecast` on the fleet's CSV (the car's code, one process): batteries/s
  * the batch form in-process, one core (agent.cleaning.clean_columns + forecast_batch over
    the lake's typed daily rows, no Spark): batteries/s per core
  * `score battery --lake` on local[2] and local[1], each in a fresh session (job time,
    session start excluded; the executors' Python start and bundle check included, as a
    user's job pays them): batteries/s, the job's stages, Spark's stages with their wall
    time and summed task time (task time / wall = the parallelism the job really got), the
    load average before and after; the ratio local[2] / local[1] shows scaling only if the
    machine had two idle cores — the load average says whether it had
  * `lake compact` of the fleet's rows landed by ingest workers: rows/s
  * with --csv: `score battery --history CSV` on local[2] vs trey-agent forecast

    python -m bench.bench_score [--batteries 600] [--seed 5] [--csv]

Histories are the generator's (~4-5 years per battery, so the daily table has ~2,000 date
partitions whatever the fleet size: per-file costs are fixed, per-battery work grows with
--batteries). Prints one line per figure and a JSON summary."""

from __future__ import annotations

import argparse
import csv
import json
import os
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


def _cpu(before: dict | None = None) -> dict:
    """CPU time of the whole machine and of this process's tree (the JVM, its Python workers)
    from /proc; with `before`: the cores each kept busy in between (Linux; {} elsewhere)."""
    try:
        with open("/proc/stat") as fh:
            f = [int(x) for x in fh.readline().split()[1:]]
        now = {"t": time.monotonic(), "machine": sum(f) - f[3] - f[4], "mine": 0}   # all but idle, iowait
        parent, ticks = {}, {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as fh:
                        st = fh.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                parent[int(d)], ticks[int(d)] = int(st[1]), int(st[11]) + int(st[12]) + int(st[13]) + int(st[14])
        for pid, t in ticks.items():
            p = pid
            while p in parent and p != os.getpid() and p > 1:
                p = parent[p]
            if p == os.getpid():
                now["mine"] += t
    except OSError:
        return {}
    if before is None or not before:
        return now
    hz, dt_ = os.sysconf("SC_CLK_TCK"), now["t"] - before["t"]
    machine = (now["machine"] - before["machine"]) / hz / dt_
    job = (now["mine"] - before["mine"]) / hz / dt_
    return {"machine_cores": round(machine, 2), "job_cores": round(job, 2),
            "other_work_cores": round(max(0.0, machine - job), 2)}


def _stage_ids(spark) -> int:
    """The next Spark stage id (what a job run after this creates)."""
    return max((s["id"] for s in _spark_stages(spark, 0)), default=-1) + 1


def _spark_stages(spark, first: int) -> list[dict]:
    """Spark's completed stages from id `first` on: wall time (submission to completion), summed
    task run time, tasks (Spark's status store, the one its UI reads; empty if unavailable)."""
    try:
        sc = spark.sparkContext
        jvm = sc._jvm
        store = sc._jsc.sc().statusStore()
        stages = store.stageList(jvm.java.util.ArrayList(), False, False, sc._gateway.new_array(jvm.double, 0),
                                 jvm.java.util.ArrayList())
        out = []
        for i in range(stages.size()):
            st = stages.apply(i)
            sub, done = st.submissionTime(), st.completionTime()
            if st.stageId() < first or not (sub.isDefined() and done.isDefined()) or st.numCompleteTasks() == 0:
                continue                                                   # skipped (shuffle reused)
            out.append({"id": int(st.stageId()), "tasks": int(st.numCompleteTasks()),
                        "wall_s": round((done.get().getTime() - sub.get().getTime()) / 1000, 2),
                        "task_s": round(st.executorRunTime() / 1000, 2),
                        "what": _stage_what(st)})
        return sorted(out, key=lambda s: s["id"])
    except Exception:                                                      # best effort: a figure less
        return []


def _stage_what(st) -> str:
    """What a stage did, from its metrics (its name is a code location)."""
    parts = []
    if st.inputBytes():
        parts.append(f"read {st.inputBytes() / 1e6:.1f} MB ({st.inputRecords()} rows)")
    if st.shuffleReadBytes():
        parts.append(f"shuffle read {st.shuffleReadBytes() / 1e6:.1f} MB")
    if st.shuffleWriteBytes():
        parts.append(f"shuffle write {st.shuffleWriteBytes() / 1e6:.1f} MB")
    if st.outputBytes():
        parts.append(f"write {st.outputBytes() / 1e6:.2f} MB")
    return ", ".join(parts) or "listing / bookkeeping"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batteries", type=int, default=600, help="fleet size (600: ~5 minutes on an idle 2-core box)")
    ap.add_argument("--csv", action="store_true", help="also score the fleet's CSV on Spark (local[2])")
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
        if a.csv:
            t = time.perf_counter()
            score_battery(spark, str(tmp / "out_csv"), history=str(csv_path))
            dt_h = time.perf_counter() - t
            res["score_battery_csv_local2_batteries_per_s"] = round(n_bat / dt_h, 1)
            print(f"score battery --history CSV local[2]:     {n_bat / dt_h:8.1f} batteries/s  ({dt_h:.1f} s)")
        for master in ("local[2]", "local[1]"):
            spark.stop()
            spark = session(master, "bench-score")
            tag = master.replace("[", "").replace("]", "")                    # no glob characters in paths
            first = _stage_ids(spark)
            load0, cpu0 = os.getloadavg()[0], _cpu()
            t = time.perf_counter()
            s = score_battery(spark, str(tmp / f"out-{tag}"), lake=str(lake))
            dtm = time.perf_counter() - t
            load1, cpu = os.getloadavg()[0], _cpu(cpu0)
            res[f"score_battery_lake_{master}_cpu"] = cpu
            res[f"score_battery_lake_{master}_batteries_per_s"] = round(s["batteries"] / dtm, 1)
            res[f"score_battery_lake_{master}_stages_s"] = s["stages_s"]
            res[f"score_battery_lake_{master}_load_avg"] = [round(load0, 2), round(load1, 2)]
            print(f"score battery --lake {master}:            {s['batteries'] / dtm:8.1f} batteries/s  ({dtm:.1f} s; "
                  f"load average {load0:.1f} -> {load1:.1f} on {os.cpu_count()} cores)")
            if cpu:
                print(f"    cores busy during the job: {cpu['machine_cores']:.2f} of {os.cpu_count()}, "
                      f"this job {cpu['job_cores']:.2f}, other work {cpu['other_work_cores']:.2f}")
            for name, sec in s["stages_s"].items():
                print(f"    job stage {name}: {sec:.1f} s")
            spark_stages = _spark_stages(spark, first)
            res[f"score_battery_lake_{master}_spark_stages"] = spark_stages
            for st_ in spark_stages:
                print(f"    spark stage {st_['id']:3d} {st_['tasks']:4d} tasks  wall {st_['wall_s']:6.1f} s  "
                      f"task time {st_['task_s']:6.1f} s  (x{st_['task_s'] / max(st_['wall_s'], 1e-3):.2f})  "
                      f"{st_['what']}")
        spark.stop()
    r1, r2 = res["score_battery_lake_local[1]_batteries_per_s"], res["score_battery_lake_local[2]_batteries_per_s"]
    res["scaling_local2_over_local1"] = round(r2 / r1, 2)
    others = max(res[f"score_battery_lake_{m}_cpu"]["other_work_cores"] for m in ("local[1]", "local[2]"))
    print(f"scaling local[2] / local[1]: {r2 / r1:.2f}  (other work on the machine during the runs: up to "
          f"{others:.2f} of {os.cpu_count()} cores)")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
