"""The fleet dashboard over a lake written by the real pipeline (not its demo generator):
uplink payloads (agent.topics) -> ingest's landing files -> Spark `lake compact` -> Spark
`score battery` -> `trey-export dashboard`. Duplicates re-sent after compaction must not be
counted twice, and the vehicle view must show the rows and the forecast the jobs wrote."""

from __future__ import annotations

import datetime as dt
import json

from agent import topics as T
from export.ingest import LandingWriter
from export.lake.compact import compact
from export.lake.score_battery import score_battery
from tests.dashboard_support import get_json, serving
from tests.sync_support import make_row

VEHICLES = ("CAR-1", "CAR-2", "CAR-3")
DAYS = 60


def _alert(i: int, day: str) -> dict:
    ts = f"{day}T08:00:00Z"
    return {"change": "raised", "id": 1, "key": f"battery:B{i}", "kind": "battery", "severity": "warning",
            "title": "Battery near end of life", "message": "schedule a service appointment",
            "explanation": {"projected": 201.0}, "state": "raised", "created": ts, "updated": ts,
            "acknowledged": None, "acknowledged_by": None, "cleared": None, "vehicle_date": day,
            "raised_vehicle_date": day, "revision": 1}


def test_dashboard_reads_what_compaction_and_scoring_wrote(spark, tmp_path):
    lake = tmp_path / "lake"
    w = LandingWriter(lake, "w1")
    t0 = dt.datetime(2025, 1, 2, tzinfo=dt.timezone.utc).timestamp()
    batch, resend = [], []
    for i, vid in enumerate(VEHICLES):
        for d in range(DAYS):
            p = T.daily_payload(vid, make_row(f"B{i}", d, lifetime=150.0 + 10 * i))
            item = ("daily", vid, T.daily_topic(vid), json.dumps(p), t0 + d * 86400)
            batch.append(item)
            if d < 5:
                resend.append(item[:4] + (t0 + (DAYS + 3) * 86400,))   # re-sent days later
        last_day = (dt.date(2025, 1, 1) + dt.timedelta(days=DAYS - 1)).isoformat()
        batch.append(("alert", vid, T.alerts_topic(vid), json.dumps(T.alert_payload(vid, _alert(i, last_day))),
                      t0 + DAYS * 86400))
        st = T.status_payload(vid, "online", f"{last_day}T09:00:00Z",
                              outbox={"rows": 0, "bytes": 0, "sent": DAYS, "dropped_telemetry": 0,
                                      "dropped_alerts": 0}, downlink_rejected={}, models={})
        batch.append(("status", vid, T.status_topic(vid), json.dumps(st), t0 + DAYS * 86400))
    w.write(batch)
    compact(spark, lake)
    w.write(resend)
    compact(spark, lake)
    score_battery(spark, lake, lake=lake)

    with serving(lake) as (url, _):
        st, ov = get_json(url + "/api/overview?days=90")
        assert st == 200, ov
        assert ov["summary"]["vehicles"] == len(VEHICLES)
        assert ov["summary"]["open_alerts"] == len(VEHICLES)
        st, v = get_json(url + "/api/vehicle?id=CAR-2&days=365")
        assert st == 200, v
        hist = v["tables"]["battery_history"]["rows"]
        assert len(hist) == DAYS                              # re-sent rows counted once
        assert v["summary"]["battery_id"] == "B1" and v["summary"]["forecast"]["model"]
        fc = v["tables"]["forecast"]["rows"]
        assert len(fc) == 30 and all(r[2] is not None and r[2] >= 0 for r in fc)
        st, risk = get_json(url + "/api/battery/risk?within=365")
        assert st == 200, risk
