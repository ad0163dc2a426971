"""trey-export ingest summary --data DIR --out DIR: the fleet alert dashboard from ingested data.

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
    p.add_argument("--data", required=True, help="ingest output directory (trey-export ingest --out)")
    p.add_argument("--out", required=True, help="where to write the CSVs and the PNG")


def summarize(data_dir, out_dir) -> dict:
    import pandas as pd
    from export.ingest import read_alerts, read_daily
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    al = read_alerts(data_dir)
    if len(al):
        day = al["vehicle_date"].where(al["vehicle_date"].notna() & (al["vehicle_date"].astype(str) != ""),
                                       al["updated"].astype(str).str[:10])
        al = al.assign(date=day.astype(str).str[:10])
        counts = (al.groupby(["date", "kind", "change"]).size().rename("count").reset_index()
                  .sort_values(["date", "kind", "change"]))
        latest = al.sort_values("revision").groupby(["vehicle_id", "alert_id"], as_index=False).last()
        open_ = latest[latest["state"] != "cleared"]
        per_vehicle = (open_.groupby("vehicle_id")
                       .agg(open_alerts=("alert_id", "size"),
                            kinds=("kind", lambda s: ";".join(sorted(set(s)))),
                            titles=("title", lambda s: ";".join(sorted(set(map(str, s))))),
                            last_update=("updated", "max"))
                       .reset_index().sort_values("vehicle_id"))
    else:
        counts = pd.DataFrame(columns=["date", "kind", "change", "count"])
        per_vehicle = pd.DataFrame(columns=["vehicle_id", "open_alerts", "kinds", "titles", "last_update"])
    counts.to_csv(out / "alerts_per_kind_day.csv", index=False)
    per_vehicle.to_csv(out / "vehicles_open_alerts.csv", index=False)
    daily = read_daily(data_dir)
    cover = (daily.groupby("Date").agg(vehicles=("vehicle_id", "nunique"), rows=("vehicle_id", "size"))
             .reset_index().rename(columns={"Date": "date"}))
    cover.to_csv(out / "daily_rows_per_day.csv", index=False)
    _chart(counts, per_vehicle, out / "fleet_alerts.png")
    return {"alert_changes": int(counts["count"].sum()) if len(counts) else 0,
            "vehicles_with_open_alerts": int(len(per_vehicle)), "daily_rows": int(len(daily)), "out": str(out)}


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
    if not Path(args.data).is_dir():
        print(f"error: --data {args.data}: not a directory", file=sys.stderr)
        return 2
    import json
    print(json.dumps(summarize(args.data, args.out)))
    return 0
