"""The lake: tables.py agrees with docs/lake.md; `lake compact` is exactly-once by msg_id
(duplicates inside a batch, across workers, and re-sent days after their partition was
compacted), idempotent, crash-safe, and reads the old CSV layout through `lake migrate`."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agent import topics as T
from export.ingest import LandingWriter, landing_files, read_alerts, read_daily, read_status
from export.lake import tables as LT
from tests.conftest import ROOT
from tests.sync_support import make_row

DOC = ROOT / "docs" / "lake.md"
_TYPES = {"string": pa.string(), "int64": pa.int64(), "double": pa.float64(), "bool": pa.bool_(),
          "date": pa.date32(), "ts": LT.TS, "json": pa.string(), "list<double>": pa.list_(pa.float64()),
          "list<string>": pa.list_(pa.string())}


def _doc_tables() -> dict[str, list[tuple[str, pa.DataType, bool]]]:
    out, table = {}, None
    for line in DOC.read_text().splitlines():
        m = re.match(r"## (\w+) \(", line)
        if m:
            table = m.group(1)
            out[table] = []
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if table is None or len(cells) < 2 or cells[0] in ("column", "---") or cells[0].startswith("*"):
            continue
        kind = cells[1].split("(")[0].split(":")[0].strip()
        not_null = "NOT NULL" in kind
        base = kind.replace("NOT NULL", "").strip().lower()
        for name in cells[0].split(","):
            out[table].append((name.strip(), _TYPES[base], not_null))
    return out


def test_tables_py_is_the_code_form_of_docs_lake_md():
    doc = _doc_tables()
    assert set(doc) == set(LT.SCHEMAS)
    for name, cols in doc.items():
        s = LT.SCHEMAS[name]
        for col, typ, not_null in cols:
            assert col in s.names, f"{name}.{col} documented but not in tables.py"
            assert s.field(col).type == typ, f"{name}.{col}: doc {typ}, tables.py {s.field(col).type}"
            assert s.field(col).nullable == (not not_null), f"{name}.{col} nullability"
        if name != LT.DAILY:      # daily documents the agent's further columns by reference
            assert [c for c, *_ in cols] == s.names, name
    from agent.schema import DAILY_COLUMNS
    assert LT.SCHEMAS[LT.DAILY].names == list(DAILY_COLUMNS) + ["vehicle_id", "msg_id", "received_at"]


def _daily(vid, bat, day, mid=None):
    p = T.daily_payload(vid, make_row(bat, day), msg_id=mid)
    return ("daily", vid, T.daily_topic(vid), json.dumps(p), time.time()), p["msg_id"]


def _alert(vid, aid, change, rev, day, mid=None):
    updated = f"{(dt.date(2025, 1, 1) + dt.timedelta(days=day)).isoformat()}T08:00:00+00:00"
    a = {"id": aid, "key": f"battery:{aid}", "kind": "battery", "severity": "warning", "state": "active",
         "title": "Battery", "message": "m", "explanation": {"x": 1}, "created": updated, "updated": updated,
         "revision": rev, "vehicle_date": updated[:10], "raised_vehicle_date": updated[:10], "change": change}
    p = T.alert_payload(vid, a, msg_id=mid)
    return ("alert", vid, T.alerts_topic(vid), json.dumps(p), time.time()), p["msg_id"]


def _status(vid):
    p = T.status_payload(vid, "online", "2025-01-03T10:00:00+00:00", outbox_rows=3,
                         downlink_rejected={"components:bad_json": 2})
    return ("status", vid, T.status_topic(vid), json.dumps(p), time.time()), p["msg_id"]


def _snapshot(lake):
    d = read_daily(lake).sort_values("msg_id").reset_index(drop=True)
    a = read_alerts(lake).sort_values("msg_id").reset_index(drop=True)
    return d, a


def test_compaction_exactly_once_idempotent_and_late_resends(tmp_path, spark):
    from export.lake.compact import compact
    lake = tmp_path / "lake"
    w1, w2 = LandingWriter(lake, "w1"), LandingWriter(lake, "w2")
    rows = [_daily("CAR-1", "B1", d) for d in range(10)] + [_daily("CAR-2", "B2", d) for d in range(10)]
    al = [_alert("CAR-1", 1, "raised", 1, 3), _alert("CAR-1", 1, "cleared", 2, 4)]
    st = _status("CAR-1")
    # inside one batch: row 0 twice; across workers: rows 5..9 landed by both (a redelivery)
    w1.write([r for r, _ in rows[:10]] + [rows[0][0]] + [r for r, _ in al] + [st[0]])
    w2.write([r for r, _ in rows[5:]])
    s1 = compact(spark, str(lake))
    assert s1["landing_rows"] == 10 + 1 + 2 + 1 + 15 and s1["duplicates"] == 6
    assert s1["rows"] == {"daily": 20, "alerts": 2, "status": 1}
    d1, a1 = _snapshot(lake)
    assert len(d1) == 20 and d1["msg_id"].is_unique
    assert sorted(set(zip(d1.vehicle_id, d1.Battery_ID))) == [("CAR-1", "B1"), ("CAR-2", "B2")]
    assert list(a1["change"]) == sorted(["raised", "cleared"], key=lambda c: a1.set_index("change").msg_id[c])
    assert json.loads(read_status(lake)["downlink_rejected"][0]) == {"components:bad_json": 2}

    # running again without new landing files changes nothing
    s2 = compact(spark, str(lake))
    assert s2["run"] is None and s2["landing_files"] == 0
    d2, a2 = _snapshot(lake)
    assert d2.equals(d1) and a2.equals(a1)

    # days later: a car that was offline re-sends rows whose partitions were compacted, plus new ones
    late = [r for r, _ in rows[:3]] + [r for r, _ in al[:1]]
    fresh = [_daily("CAR-1", "B1", d) for d in range(10, 13)]
    LandingWriter(lake, "w3").write(late + [r for r, _ in fresh])
    s3 = compact(spark, str(lake))
    assert s3["already_compacted"] == 4 and s3["rows"] == {"daily": 3, "alerts": 0, "status": 0}
    d3, a3 = _snapshot(lake)
    assert len(d3) == 23 and d3["msg_id"].is_unique and len(a3) == 2
    assert set(d3["msg_id"]) == {m for _, m in rows} | {m for _, m in fresh}

    # files are the documented schema (names and types) and partitioned by the documented column
    for name in (LT.DAILY, LT.ALERTS, LT.STATUS):
        files = sorted((lake / name).glob("date=*/*.parquet"))
        assert files, name
        for f in files:
            got = pq.read_schema(f)
            assert got.names == LT.SCHEMAS[name].names, (name, got.names)
            assert [got.field(c).type for c in got.names] == [LT.SCHEMAS[name].field(c).type for c in got.names]
    assert sorted(p.name for p in (lake / "daily").iterdir()) == [f"date=2025-01-{d:02d}" for d in range(1, 14)]
    # landing is kept (consumed files recorded), so it can be expired afterwards: never before
    assert len(landing_files(lake)) == 3
    s4 = compact(spark, str(lake), expire_landing_days=0)
    assert s4["landing_expired"] == 3 and not landing_files(lake)
    d4, _ = _snapshot(lake)
    assert d4.equals(d3)


@pytest.mark.parametrize("crash", ["staged", "committed"])
def test_crash_mid_compaction_then_rerun_gives_the_same_tables(tmp_path, spark, crash):
    from export.lake.compact import CrashForTest, compact
    lake, ref = tmp_path / "lake", tmp_path / "ref"
    batch = [_daily("CAR-1", "B1", d)[0] for d in range(6)] + [_alert("CAR-1", 7, "raised", 1, 2)[0]]
    for root in (lake, ref):
        LandingWriter(root, "w1").write(batch + batch[:2])
    compact(spark, str(ref))
    with pytest.raises(CrashForTest):
        compact(spark, str(lake), fail_at=crash)
    if crash == "staged":            # nothing committed: readers see no rows yet
        assert len(read_daily(lake)) == 0
    s = compact(spark, str(lake))
    assert s["rolled_forward"] == (crash == "committed") and s["discarded_runs"] == (crash == "staged")
    assert s["run"] is None if crash == "committed" else s["rows"]["daily"] == 6
    got, want = _snapshot(lake), _snapshot(ref)
    cols = [c for c in got[0].columns if c != "received_at"]
    assert got[0][cols].equals(want[0][cols]) and len(got[1]) == len(want[1]) == 1
    assert not list((lake / "_compaction" / "staging").glob("*"))
    assert compact(spark, str(lake))["run"] is None


def test_old_csv_dataset_is_read_and_migrated_into_the_lake(tmp_path, spark):
    """A dataset of the old layout: read_daily still reads it; `lake migrate` + compact puts
    exactly its rows into the curated tables (twice migrated = once)."""
    from agent.schema import DAILY_COLUMNS
    from export.lake.compact import compact
    from export.lake.legacy import LEGACY_ALERT_COLUMNS, migrate
    old = tmp_path / "old"
    part = old / "daily" / "date=2025-01-01"
    part.mkdir(parents=True)
    header = ",".join(DAILY_COLUMNS + ("vehicle_id",))
    lines = [header] + [",".join(str(make_row("B7", 0)[c]) if make_row("B7", 0)[c] is not None else ""
                                 for c in DAILY_COLUMNS) + f",CAR-{i}" for i in range(3)]
    (part / "part-w1.csv").write_text("\n".join(lines) + "\n")
    ap = old / "alerts" / "date=2025-01-01"
    ap.mkdir(parents=True)
    (ap / "part-w1.csv").write_text(",".join(LEGACY_ALERT_COLUMNS) + "\n" + ",".join(
        ["a" * 32, "CAR-0", "raised", "4", "battery:x", "battery", "warning", "active", "Battery", "m",
         "2025-01-01T08:00:00+00:00", "2025-01-01T08:00:00+00:00", "", "", "", "2025-01-01", "2025-01-01", "1",
         '"{""x"":1}"']) + "\n")
    assert len(read_daily(old)) == 3 and len(read_alerts(old)) == 1       # the legacy reader
    lake = tmp_path / "lake"
    r = subprocess.run([sys.executable, "-m", "export.cli", "lake", "migrate", "--from", str(old), "--lake", str(lake)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["landed"] == {"daily": 3, "alert": 1, "status": 0}
    migrate(old, lake)                                                    # again: same msg_ids
    compact(spark, str(lake))
    d = read_daily(lake)
    assert sorted(d["vehicle_id"]) == ["CAR-0", "CAR-1", "CAR-2"] and set(d["Date"]) == {"2025-01-01"}
    assert d["Daily_Cycles_Used"].tolist() == [0.35] * 3 and d["Battery_Age_Days"].tolist() == [100] * 3
    a = read_alerts(lake)
    assert len(a) == 1 and a["alert_id"][0] == 4 and json.loads(a["explanation"][0]) == {"x": 1}


def test_daily_projection_fast_path_equals_the_row_by_row_rule():
    """Compaction parses daily payloads in Arrow's JSON reader; the result is what the
    row-by-row projection (project.daily_row) gives, and an odd payload falls back to it."""
    from export.lake.project import ROW, _daily_fast, project, with_partition
    rows = []
    for d in range(300):
        r = make_row(f"B{d % 7}", d)
        if d % 5 == 0:
            r["Min_Cranking_Voltage"] = None
        if d % 11 == 0:
            r["Battery_Age_Days"] = 12.0
        rows.append(json.dumps(T.daily_payload(f"CAR-{d % 3}", r)))
    odd = json.loads(rows[0])
    odd["row"]["Number_Of_Trips"] = "3"                   # a number sent as text
    now = dt.datetime.now(dt.timezone.utc)

    def batch(payloads):
        return pa.RecordBatch.from_pydict(
            {"msg_id": ["x"] * len(payloads), "kind": ["daily"] * len(payloads),
             "vehicle_id": [json.loads(p)["vehicle_id"] for p in payloads], "topic": ["t"] * len(payloads),
             "received_at": [now] * len(payloads), "worker": ["w"] * len(payloads), "payload": payloads},
            schema=LT.SCHEMAS[LT.LANDING])

    def slow(payloads):
        out = []
        for p in payloads:
            r = ROW["daily"][1](json.loads(p), json.loads(p)["vehicle_id"], now)
            r["date"] = r["Date"]
            out.append(r)
        return pa.RecordBatch.from_pylist(out, schema=with_partition(LT.DAILY))

    assert _daily_fast(batch(rows)).equals(slow(rows))
    mixed = rows[1:] + [json.dumps(odd)]
    with pytest.raises(pa.ArrowException):
        _daily_fast(batch(mixed))
    got = project("daily", batch(mixed))
    assert got.equals(slow(mixed)) and got.column("Number_Of_Trips")[-1].as_py() == 3


def test_compaction_process_killed_mid_run_then_rerun_gives_the_same_tables(tmp_path, spark):
    """A real `trey-export lake compact` process SIGKILLed as soon as it has staged output
    (before or after its commit, wherever the kill lands): the next run gives the tables a
    clean run gives, and nothing twice."""
    import os
    import signal
    from export.lake.compact import compact
    from tests.conftest import wait_until
    lake, ref = tmp_path / "lake", tmp_path / "ref"
    batch = [_daily("CAR-1", "B1", d)[0] for d in range(30)] + [_alert("CAR-1", 3, "raised", 1, 2)[0]]
    for root in (lake, ref):
        LandingWriter(root, "w1").write(batch)
        LandingWriter(root, "w2").write(batch[:10])
    compact(spark, str(ref))
    p = subprocess.Popen([sys.executable, "-m", "export.cli", "lake", "compact", "--lake", str(lake),
                          "--master", "local[1]"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    staging = lake / "_compaction" / "staging"
    try:
        wait_until(lambda: p.poll() is not None or any(staging.glob("*/daily/date=*/part-*.parquet")), 240,
                   interval=0.02, what="the compaction process staged its output")
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.communicate(timeout=30)
    s = compact(spark, str(lake))
    assert s["rolled_forward"] + s["discarded_runs"] + (s["run"] is None) >= 1
    got, want = _snapshot(lake), _snapshot(ref)
    cols = [c for c in got[0].columns if c != "received_at"]
    assert got[0][cols].equals(want[0][cols]) and len(got[1]) == len(want[1]) == 1
    assert compact(spark, str(lake))["run"] is None


def test_cloud_cli_console_is_our_progress_lines_only_and_errors_one_line(tmp_path):
    """A real `trey-export lake compact` process: stderr carries our one line per stage and
    nothing of Spark's or the JVM's start-up banner; a bad --lake is one clear error line."""
    lake = tmp_path / "lake"
    LandingWriter(lake, "w1").write([_daily("CAR-1", "B1", d)[0] for d in range(3)])

    def cli(lake_arg):
        return subprocess.run([sys.executable, "-m", "export.cli", "lake", "compact", "--lake", lake_arg,
                               "--master", "local[1]"], cwd=ROOT, capture_output=True, text=True, timeout=300)

    r = cli(str(lake))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rows"]["daily"] == 3
    lines = r.stderr.splitlines()
    ours = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING) export\.[\w.]+: ")
    assert [ln for ln in lines if not ours.match(ln)] == [], r.stderr        # no banner, no log4j, no JVM notice
    stages = [ln for ln in lines if " export.spark: compact: " in ln and " done in " in ln]
    assert len(stages) >= 3 and any("drop duplicates" in ln for ln in stages), r.stderr
    (tmp_path / "a_file").write_text("not a lake")
    for bad, says in ((str(tmp_path / "a_file"), "not a directory"),
                      ("nosuch://bucket/lake", 'No FileSystem for scheme "nosuch"')):
        r = cli(bad)
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr.splitlines() == [r.stderr.strip()] and r.stderr.startswith("error: ") and says in r.stderr, \
            r.stderr
