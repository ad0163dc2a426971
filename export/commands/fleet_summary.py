"""trey-export ingest summary --lake URI --out DIR [--master M]: the fleet alert dashboard, a
Spark job over the lake's curated alerts and daily tables (run `trey-export lake compact` first).

Writes
  alerts_per_kind_day.csv   date,kind,change,count   (date = vehicle date of the change, else its UTC day)
  vehicles_open_alerts.csv  vehicle_id,open_alerts,kinds,titles,last_update  (latest revision of each
                            alert not cleared)
  daily_rows_per_day.csv    date,vehicles,rows       (telemetry coverage)
  fleet_alerts.png          alerts raised per day and kind + open alerts per vehicle
"""

from __future__ import annotations

import sys
from pathlib import Path


def configure(p) -> None:
    from export.lake.spark import add_master_arg
    p.add_argument("--lake", "--data", dest="lake", required=True, help="lake root (trey-export ingest --lake)")
    p.add_argument("--out", required=True, help="where to write the CSVs and the PNG")
    add_master_arg(p)


def _table(spark, lake, name):
    from export.lake import tables as LT
    from export.lake.compact import spark_schema
    from export.lake.fs import LakeFS
    fs = LakeFS(spark, lake)
    schema = spark_schema(LT.SCHEMAS[name])
    if not fs.glob(f"{name}/date=*/*.parquet"):
        return spark.createDataFrame([], schema)
    return spark.read.schema(schema).parquet(fs.abs(name)).select(*LT.SCHEMAS[name].names)


def summarize(spark, lake, out_dir) -> dict:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from export.lake.spark import StageProgress
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with StageProgress(spark, "summary"):
        al = _table(spark, lake, "alerts").withColumn(
            "date", F.coalesce(F.col("vehicle_date"), F.to_date("updated")).cast("string"))
        counts = (al.groupBy("date", "kind", "change").count().orderBy("date", "kind", "change").toPandas())
        last = Window.partitionBy("vehicle_id", "alert_id").orderBy(F.col("revision").desc(), F.col("updated").desc())
        latest = al.withColumn("_n", F.row_number().over(last)).where("_n = 1")
        per_vehicle = (latest.where(F.col("state") != "cleared").groupBy("vehicle_id")
                       .agg(F.count("*").alias("open_alerts"),
                            F.array_join(F.array_sort(F.collect_set("kind")), ";").alias("kinds"),
                            F.array_join(F.array_sort(F.collect_set("title")), ";").alias("titles"),
                            F.max("updated").alias("last_update"))
                       .orderBy("vehicle_id").toPandas())
        daily = _table(spark, lake, "daily")
        cover = (daily.groupBy(F.col("Date").cast("string").alias("date"))
                 .agg(F.countDistinct("vehicle_id").alias("vehicles"), F.count("*").alias("rows"))
                 .orderBy("date").toPandas())
    per_vehicle["last_update"] = per_vehicle["last_update"].map(lambda t: t.isoformat() if t is not None else "")
    counts.to_csv(out / "alerts_per_kind_day.csv", index=False)
    per_vehicle.to_csv(out / "vehicles_open_alerts.csv", index=False)
    cover.to_csv(out / "daily_rows_per_day.csv", index=False)
    _chart(counts, per_vehicle, out / "fleet_alerts.png")
    return {"alert_changes": int(counts["count"].sum()) if len(counts) else 0,
            "vehicles_with_open_alerts": int(len(per_vehicle)), "daily_rows": int(cover["rows"].sum()) if len(cover) else 0,
            "out": str(out)}


def _chart(counts, per_vehicle, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
    raised = counts[counts["change"] == "raised"] if len(counts) else counts
    if len(raised):
        pivot = raised.pivot_table(index="date", columns="kind", values="count", aggfunc="sum", fill_value=0)
        pivot.plot(kind="bar", stacked=True, ax=ax1, width=0.8)
        ax1.tick_params(axis="x", labelrotation=60, labelsize=7)
    else:
        ax1.text(0.5, 0.5, "no alerts raised", ha="center", va="center", transform=ax1.transAxes)
    ax1.set_title("Alerts raised per day")
    ax1.set_ylabel("alerts")
    if len(per_vehicle):
        ax2.barh(per_vehicle["vehicle_id"].astype(str), per_vehicle["open_alerts"], color="tab:red")
    else:
        ax2.text(0.5, 0.5, "no open alerts", ha="center", va="center", transform=ax2.transAxes)
    ax2.set_title("Open alerts per vehicle")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(args) -> int:
    import json

    from export.lake.legacy import is_legacy
    from export.lake.spark import session
    if is_legacy(args.lake):
        print(f"error: --lake {args.lake}: a dataset of the old CSV layout; move it into a lake with "
              "`trey-export lake migrate --from DIR --lake LAKE` and `trey-export lake compact`", file=sys.stderr)
        return 2
    spark = session(args.master, "trey-export ingest summary")
    print(json.dumps(summarize(spark, args.lake, args.out)))
    return 0
