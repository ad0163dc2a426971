"""The fleet dashboard's API over a generated lake: every view's numbers equal the lake read
back independently (pyarrow + Python), CSV equals JSON, bad parameters are 4xx JSON, a missing
or empty lake is a clear answer, auth, read-only, new lake files are picked up, and idle
connections do not lock it."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import socket
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.dashboard_support import get, get_json, serving, small_lake, table

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    return small_lake(tmp_path_factory.mktemp("dash") / "lake")


@pytest.fixture(scope="module")
def site(lake):
    with serving(lake) as (url, app):
        yield url, app


def _as_of(lake):
    return max(r["received_at"] for t in ("daily", "status", "alerts") for r in table(lake, t))


def test_overview_matches_the_lake(lake, site):
    url, _ = site
    st, d = get_json(url + "/api/overview?days=60")
    assert st == 200
    ref = _as_of(lake)
    # open alerts = latest revision of each (vehicle, alert id) not cleared, per kind
    latest = {}
    for r in table(lake, "alerts"):
        k = (r["vehicle_id"], r["alert_id"])
        if k not in latest or r["revision"] > latest[k]["revision"]:
            latest[k] = r
    want_open = Counter(r["kind"] for r in latest.values() if r["state"] != "cleared")
    got_open = Counter()
    for kind, _sev, n, _v in d["tables"]["open_alerts"]["rows"]:
        got_open[kind] += n
    assert got_open == want_open and sum(want_open.values()) > 0
    assert d["summary"]["open_alerts"] == sum(want_open.values())
    # vehicles seen: any message received in the window before the newest one
    last = {}
    for t in ("daily", "status", "alerts"):
        for r in table(lake, t):
            last[r["vehicle_id"]] = max(last.get(r["vehicle_id"], r["received_at"]), r["received_at"])
    assert d["summary"]["seen_24h"] == sum(v > ref - dt.timedelta(hours=24) for v in last.values())
    assert d["summary"]["seen_7d"] == sum(v > ref - dt.timedelta(days=7) for v in last.values())
    assert d["summary"]["vehicles"] == len(last)
    assert dt.datetime.fromisoformat(d["as_of"].replace("Z", "+00:00")) == ref
    # raised alerts per day in the window
    since = ref.date() - dt.timedelta(days=60)
    want_raised = Counter(str(r["updated"].date()) for r in table(lake, "alerts")
                          if r["change"] == "raised" and r["updated"].date() > since)
    got_raised = Counter()
    for day, _kind, change, n in d["tables"]["alerts_per_day"]["rows"]:
        if change == "raised":
            got_raised[day] += n
    assert got_raised == want_raised
    # models per version = the latest online status of each vehicle
    online = {}
    for r in table(lake, "status"):
        if r["state"] == "online" and (r["vehicle_id"] not in online or r["at"] > online[r["vehicle_id"]]["at"]):
            online[r["vehicle_id"]] = r
    want_models = Counter((slot, m["version"]) for r in online.values() for slot, m in json.loads(r["models"]).items())
    assert {(s, v): n for s, v, n in d["tables"]["models"]["rows"]} == dict(want_models)
    # a filter changes the numbers
    _, bat = get_json(url + "/api/overview?days=60&kind=battery")
    assert {r[1] for r in bat["tables"]["alerts_per_day"]["rows"]} == {"battery"}
    assert bat["summary"]["open_alerts"] == want_open["battery"] < d["summary"]["open_alerts"]


def _current_forecasts(lake):
    fitted = {}
    for r in table(lake, "daily"):          # the battery each car reported last
        if r["vehicle_id"] not in fitted or r["Date"] > fitted[r["vehicle_id"]][0]:
            fitted[r["vehicle_id"]] = (r["Date"], r["Battery_ID"])
    rows = table(lake, "forecasts")
    newest = max(r["as_of"] for r in rows)
    cur = {}
    for r in rows:
        k = r["vehicle_id"]
        if k not in cur or (r["as_of"], r["scored_at"]) > (cur[k]["as_of"], cur[k]["scored_at"]):
            cur[k] = r
    out = {}
    for k, r in cur.items():
        if r["as_of"] < newest - dt.timedelta(days=21) or fitted.get(k, (0, r["battery_id"]))[1] != r["battery_id"]:
            continue
        mean = sum(r["forecast_daily_cycles"]) / len(r["forecast_daily_cycles"])
        days = r["days_to_rated"]
        if days is None and mean > 0:
            days = -(-max(r["rated_cycles"] - r["lifetime_cycles"], 0) // mean)
        out[k] = r | {"eol": r["as_of"] + dt.timedelta(days=int(days)) if days is not None else None}
    return out


def test_battery_risk_matches_the_lake_and_filters(lake, site):
    url, _ = site
    ref = _as_of(lake).date()
    cur = _current_forecasts(lake)
    for within in (30, 60, 90):
        want = sorted(k for k, r in cur.items() if r["eol"] is not None and r["eol"] <= ref + dt.timedelta(days=within))
        st, d = get_json(url + f"/api/battery/risk?within={within}")
        assert st == 200
        got = d["tables"]["risk"]["rows"]
        assert sorted(r[0] for r in got) == want
        assert d["summary"][f"eol_{within}d"] == len(want) == d["summary"]["matching"]
        dates = [r[d["tables"]["risk"]["columns"].index("eol_date")] for r in got]
        assert dates == sorted(dates)                     # default order: soonest first
    assert d["summary"]["batteries"] == len(cur)
    assert sum(n for _, n in d["tables"]["distribution"]["rows"]) == len(cur)
    one = got[0][0]
    _, f = get_json(url + f"/api/battery/risk?within=90&q={one}")
    assert [r[0] for r in f["tables"]["risk"]["rows"]] == [one]
    _, s = get_json(url + "/api/battery/risk?within=365&sort=lifetime_cycles&order=desc")
    life = [r[3] for r in s["tables"]["risk"]["rows"]]
    assert life == sorted(life, reverse=True) and len(life) > len(got)
    model = s["summary"]["models"][0]
    _, m = get_json(url + f"/api/battery/risk?within=3660&model={model}")
    assert {r[10] for r in m["tables"]["risk"]["rows"]} <= {model}


def test_accuracy_by_model_matches_the_lake(lake, site):
    url, _ = site
    daily = {(r["Battery_ID"], r["Date"]): r["Lifetime_Cycles_Used"] for r in table(lake, "daily")}
    err = defaultdict(list)
    for f in table(lake, "forecasts"):
        life30 = daily.get((f["battery_id"], f["as_of"] + dt.timedelta(days=30)))
        if life30 is not None:
            err[f["model"]].append((f["projected_lifetime_cycles_30d"] - f["lifetime_cycles"]) - (life30 - f["lifetime_cycles"]))
    st, d = get_json(url + "/api/battery/accuracy")
    assert st == 200
    rows = {r[0]: dict(zip(d["tables"]["by_model"]["columns"], r)) for r in d["tables"]["by_model"]["rows"]}
    assert set(rows) == set(err) and len(rows) == 2
    for m, e in err.items():
        assert rows[m]["forecasts"] == len(e)
        assert rows[m]["mae_cycles"] == pytest.approx(sum(abs(x) for x in e) / len(e), abs=1e-3)
        assert rows[m]["bias_cycles"] == pytest.approx(sum(e) / len(e), abs=1e-3)
    # the newer model is better in the field (the demo lake's story, and what the view is for)
    new, old = sorted(rows)[-1], sorted(rows)[0]
    assert rows[new]["mae_cycles"] < rows[old]["mae_cycles"]
    _, one = get_json(url + f"/api/battery/accuracy?model={new}&since=2020-01-01")
    assert [r[0] for r in one["tables"]["by_model"]["rows"]] == [new]


def _current_components(lake):
    cur = {}
    for r in table(lake, "compliance"):
        k = (r["vehicle_id"], r["component"])
        if k not in cur or r["scored_at"] > cur[k]["scored_at"]:
            cur[k] = r
    return cur


def test_compliance_by_part_and_cause_matches_the_lake(lake, site):
    url, _ = site
    cur = _current_components(lake)
    st, d = get_json(url + "/api/compliance")
    assert st == 200
    want_part = Counter(c for (_, c), r in cur.items() if r["verdict"] == "non_compliant")
    got_part = {r[0]: r[1] for r in d["tables"]["by_part"]["rows"]}
    assert {k: v for k, v in got_part.items() if v} == dict(want_part)
    assert d["summary"]["non_compliant"] == sum(want_part.values())
    assert d["summary"]["undetermined"] == sum(r["verdict"] == "undetermined" for r in cur.values())
    bad = [r for r in cur.values() if r["verdict"] != "compliant"]
    assert d["summary"]["vehicles_affected"] == len({r["vehicle_id"] for r in bad})
    # cause from the attribute states where present
    want_year = sum(r["year_state"] == "violates" for r in cur.values() if r["year_state"] is not None)
    causes = {r[0]: r[1] for r in d["tables"]["by_cause"]["rows"]}
    assert causes["year"] >= want_year > 0
    _, y = get_json(url + "/api/compliance?cause=year&limit=100000")
    assert all("year" in r[4] for r in y["tables"]["components"]["rows"])
    part = d["tables"]["by_part"]["rows"][0][0]
    _, p = get_json(url + f"/api/compliance?part={part.replace(' ', '%20')}")
    assert {r[2] for r in p["tables"]["components"]["rows"]} == {part}
    assert p["summary"]["matching"] == want_part[part] + sum(
        r["verdict"] == "undetermined" for (_, c), r in cur.items() if c == part)


def test_compliance_without_state_columns_reads_causes_from_why(tmp_path):
    """Older scoring output has no year_state/material_state/condition_state at all."""
    root = tmp_path / "lake"
    part = root / "compliance" / "date=2026-11-01"
    part.mkdir(parents=True)
    ts = pa.array([dt.datetime(2026, 11, 1, 8, tzinfo=dt.timezone.utc)] * 4, pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({
        "vehicle_id": ["V1", "V1", "V2", "V3"], "vin": ["A", "A", "B", "C"],
        "component": ["alternator", "radiator", "alternator", "fender"],
        "verdict": ["non_compliant", "compliant", "non_compliant", "non_compliant"],
        "compliant": [False, True, False, False], "year_value": [1985, 2010, 2001, 1990],
        "missing": pa.array([[], [], [], []], pa.list_(pa.string())),
        "why": pa.array([["1985", "fair"], [], ["cast iron"], ["'90"]], pa.list_(pa.string())),
        "model": ["compliance@1.0.0"] * 4, "scored_at": ts}), part / "part-0.parquet")
    with serving(root) as (url, _):
        st, d = get_json(url + "/api/compliance")
        assert st == 200, d
        assert {r[0]: (r[1], r[2]) for r in d["tables"]["by_cause"]["rows"]} == {
            "year": (2, 2), "condition": (1, 1), "material": (1, 1)}
        assert d["summary"]["vehicles_affected"] == 3
        assert any("no data yet in: daily" in n for n in d["notes"])
        # the other views answer too, empty, not 500
        for path in ("overview", "battery/risk", "battery/accuracy"):
            st, _ = get_json(url + f"/api/{path}")
            assert st == 200, path
        st, v = get_json(url + "/api/vehicle?id=V1")
        assert st == 200 and [r[0] for r in v["tables"]["components"]["rows"]] == ["alternator", "radiator"]


def test_vehicle_drill_down(lake, site):
    url, _ = site
    daily = [r for r in table(lake, "daily") if r["vehicle_id"] == "V000002"]
    st, d = get_json(url + "/api/vehicle?id=V000002&days=3660")
    assert st == 200
    h = d["tables"]["battery_history"]
    assert len(h["rows"]) == len(daily)
    last = max(daily, key=lambda r: r["Date"])
    assert h["rows"][-1][h["columns"].index("Lifetime_Cycles_Used")] == pytest.approx(last["Lifetime_Cycles_Used"])
    fc = d["tables"]["forecast"]["rows"]
    assert len(fc) == 30
    mine = [r for r in table(lake, "forecasts") if r["vehicle_id"] == "V000002"]
    newest = max(mine, key=lambda r: (r["as_of"], r["scored_at"]))
    assert [r[2] for r in fc] == pytest.approx(newest["forecast_daily_cycles"])
    assert fc[-1][3] == pytest.approx(newest["projected_lifetime_cycles_30d"], abs=1e-3)
    alerts = [r for r in table(lake, "alerts") if r["vehicle_id"] == "V000002"]
    assert len(d["tables"]["alerts"]["rows"]) == len(alerts)
    comps = {c for (v, c) in _current_components(lake) if v == "V000002"}
    assert {r[0] for r in d["tables"]["components"]["rows"]} == comps
    assert dict(d["tables"]["status"]["rows"])["state"] in ("online", "offline")
    st, e = get_json(url + "/api/vehicle?id=NOPE-1")
    assert st == 404 and "NOPE-1" in e["error"]
    st, s = get_json(url + "/api/vehicles?q=V00001")
    assert st == 200 and s["tables"]["vehicles"]["rows"] and all("V00001" in r[0] for r in s["tables"]["vehicles"]["rows"])


ENDPOINTS = ["overview?days=90", "battery/risk?within=90", "battery/accuracy", "compliance",
             "vehicle?id=V000002", "vehicles?q=V0000", "meta"]


def _csv_cell(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v)
    return str(v)


def test_csv_equals_json_for_every_table(site):
    url, _ = site
    for ep in ENDPOINTS:
        st, d = get_json(f"{url}/api/{ep}")
        assert st == 200, ep
        tables = d["tables"] if ep != "meta" else {"tables": None}
        for name in tables:
            sep = "&" if "?" in ep else "?"
            st, headers, body = get(f"{url}/api/{ep}{sep}format=csv&table={name}")
            assert st == 200 and headers["Content-Type"].startswith("text/csv"), (ep, name)
            assert "attachment" in headers["Content-Disposition"]
            rows = list(csv.reader(io.StringIO(body.decode())))
            if ep == "meta":
                assert [r[0] for r in rows[1:]] == list(d["tables"])
                continue
            t = d["tables"][name]
            assert rows[0] == t["columns"], (ep, name)
            assert len(rows) - 1 == len(t["rows"]), (ep, name)
            for got, want in zip(rows[1:], t["rows"]):
                for g, w in zip(got, want):
                    if isinstance(w, float):
                        assert float(g) == pytest.approx(w), (ep, name)
                    elif isinstance(w, str) and len(w) > 19 and w[10:11] == "T":   # timestamps: same instant
                        assert dt.datetime.fromisoformat(g.replace("Z", "+00:00")) == \
                            dt.datetime.fromisoformat(w.replace("Z", "+00:00"))
                    else:
                        assert g == _csv_cell(w), (ep, name, g, w)


BAD = ["overview?days=abc", "overview?days=0", "overview?kind=engine", "overview?bogus=1",
       "battery/risk?within=-1", "battery/risk?sort=drop%20table", "battery/risk?sort=nosuch",
       "battery/risk?order=sideways", "battery/risk?limit=0", "battery/risk?q=%27%3B--",
       "battery/accuracy?since=2026-13-45", "battery/accuracy?since=yesterday",
       "compliance?cause=color", "compliance?verdict=maybe", "vehicle", "vehicle?id=", "vehicle?id=a/b",
       "vehicle?id=V1&id=V2", "vehicles?q=%00", "overview?format=xml", "overview?format=csv&table=nope"]


def test_bad_parameters_are_4xx_json(site):
    url, _ = site
    for ep in BAD:
        st, headers, body = get(f"{url}/api/{ep}")
        assert 400 <= st < 500, (ep, st)
        d = json.loads(body)
        assert d["error"] and "Traceback" not in body.decode(), ep
    st, _, _ = get(url + "/api/nosuch")
    assert st == 404
    st, _, _ = get(url + "/static/../queries.py")
    assert st == 404


def test_missing_and_empty_lake(tmp_path):
    with serving(tmp_path / "nowhere") as (url, _):
        st, d = get_json(url + "/api/overview")
        assert st == 503 and "no lake" in d["error"] and "--demo" in d["error"]
        st, _, body = get(url + "/")
        assert st == 200 and b"app.js" in body            # the page loads and says so (browser test)
    (tmp_path / "empty").mkdir()
    with serving(tmp_path / "empty") as (url, _):
        for ep in ENDPOINTS[:4] + ["meta"]:
            st, d = get_json(f"{url}/api/{ep}")
            assert st == 200, (ep, d)
        assert d["as_of"] is None and not any(t["present"] for t in d["tables"].values())
        st, d = get_json(url + "/api/overview")
        assert d["summary"]["vehicles"] == 0 and any("no data yet" in n for n in d["notes"])


def test_auth_token_and_basic(lake):
    with serving(lake, token="s3cret-token", basic="ops:pa55") as (url, _):
        st, d = get_json(url + "/api/meta")
        assert st == 401 and d["error"] == "authentication required"
        assert get(url + "/api/meta", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert get(url + "/api/meta", headers={"Authorization": "Bearer s3cret-token"})[0] == 200
        assert get(url + "/api/meta", basic="ops:pa55")[0] == 200
        assert get(url + "/api/meta", basic="ops:wrong")[0] == 401
        st, headers, _ = get(url + "/?token=s3cret-token")
        assert st == 200 and "trey_dashboard=s3cret-token" in headers["Set-Cookie"]
        assert get(url + "/api/meta", headers={"Cookie": "trey_dashboard=s3cret-token"})[0] == 200
        assert get(url + "/static/app.js")[0] == 401


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def test_read_only_and_picks_up_new_files(tmp_path):
    lake = small_lake(tmp_path / "lake")
    before = _digest(lake)
    with serving(lake) as (url, app):
        for ep in ENDPOINTS:
            assert get(f"{url}/api/{ep}")[0] == 200
        req = __import__("urllib.request").request.Request(url + "/api/meta", method="POST", data=b"x")
        try:
            __import__("urllib.request").request.urlopen(req, timeout=10)
            raise AssertionError("POST accepted")
        except __import__("urllib.error").error.HTTPError as e:
            assert e.code == 405
        assert _digest(lake) == before                      # nothing written into the lake
        _, d0 = get_json(url + "/api/overview?days=3660")
        # a writer adds a partition: one more raised alert for a new vehicle
        al = pq.read_table(next((lake / "alerts").rglob("*.parquet")))
        row = al.slice(0, 1).to_pylist()[0] | {"vehicle_id": "V999999", "change": "raised", "state": "raised",
                                               "revision": 1, "msg_id": "f" * 32}
        new = lake / "alerts" / "date=2026-11-30"
        new.mkdir(exist_ok=True)
        pq.write_table(pa.Table.from_pylist([row], schema=al.schema), new / "part-extra.parquet")
        assert app.lake().refresh_if_changed() is True
        assert app.lake().refresh_if_changed() is False     # nothing new the second time
        _, d1 = get_json(url + "/api/overview?days=3660")
        assert d1["summary"]["open_alerts"] == d0["summary"]["open_alerts"] + 1
        st, v = get_json(url + "/api/vehicle?id=V999999")
        assert st == 200 and len(v["tables"]["alerts"]["rows"]) == 1


def test_idle_connections_do_not_lock_it(site):
    url, _ = site
    host, port = url.rsplit("/", 1)[-1].split(":")
    idle = [socket.create_connection((host, int(port))) for _ in range(20)]   # connect, send nothing
    try:
        half = socket.create_connection((host, int(port)))
        half.sendall(b"GET /api/meta HTTP/1.1\r\nHost: x\r\n")            # headers never finished
        st, d = get_json(url + "/api/overview")
        assert st == 200 and d["summary"]["vehicles"] > 0
    finally:
        for s in idle + [half]:
            s.close()


def test_cli_refuses_unprotected_public_bind_and_non_demo_lake(lake, tmp_path):
    r = subprocess.run([sys.executable, "-m", "export.cli", "dashboard", "--lake", str(lake),
                        "--listen", "0.0.0.0:0"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--token or --basic-auth" in r.stderr
    r = subprocess.run([sys.executable, "-m", "export.cli", "dashboard", "--demo", "--lake", str(lake)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not a demo lake" in r.stderr
    r = subprocess.run([sys.executable, "-m", "export.cli", "dashboard", "--listen", "nope"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "HOST:PORT" in r.stderr


def test_csv_export_is_the_whole_selection(site):
    url, _ = site
    _, page = get_json(url + "/api/battery/risk?within=3660&limit=5")
    assert len(page["tables"]["risk"]["rows"]) == 5 < page["summary"]["matching"]
    _, _, body = get(url + "/api/battery/risk?within=3660&format=csv&table=risk")
    assert len(list(csv.reader(io.StringIO(body.decode())))) - 1 == page["summary"]["matching"]


def test_a_writers_work_in_progress_is_not_read(tmp_path):
    """Spark writes under _temporary/ and renames into place: half-written files are not the table."""
    lake = small_lake(tmp_path / "lake")
    with serving(lake) as (url, _):
        _, d0 = get_json(url + "/api/meta")
    tmp = lake / "alerts" / "_temporary" / "0" / "date=2026-11-30"
    tmp.mkdir(parents=True)
    (tmp / "part-00000.parquet").write_bytes(b"PAR1 half written")
    (lake / "alerts" / "date=2026-11-29" / ".part-9.parquet").write_bytes(b"PAR1")
    with serving(lake) as (url, _):
        st, d1 = get_json(url + "/api/meta")
        assert st == 200 and d1["tables"] == d0["tables"]


def test_a_lake_that_appears_later_is_served(tmp_path):
    with serving(tmp_path / "later") as (url, _):
        assert get(url + "/api/overview")[0] == 503
        small_lake(tmp_path / "later")
        st, d = get_json(url + "/api/overview")
        assert st == 200 and d["summary"]["vehicles"] > 0


def test_cli_demo_serves_and_stops_on_sigterm(tmp_path):
    import re
    import signal
    from tests.conftest import free_port
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "export.cli", "dashboard", "--demo", "--vehicles", "30", "--days", "90",
                          "--lake", str(tmp_path / "demo"), "--listen", f"127.0.0.1:{port}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()            # the URL, printed once it listens
        assert line.strip() == f"http://127.0.0.1:{port}/", p.stderr.read() if p.poll() is not None else line
        st, d = get_json(f"http://127.0.0.1:{port}/api/overview")
        assert st == 200 and d["summary"]["vehicles"] == 30
        assert (tmp_path / "demo" / "_demo.json").exists()
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=60)
    err = p.stderr.read()
    assert rc == 0, err
    snap = re.search(r"lake snapshot 1 built in .* -> (\S+)\)", err).group(1)
    assert not Path(snap).exists() and not Path(snap).parent.exists()     # the snapshot is removed
    assert (tmp_path / "demo" / "daily").is_dir()


def test_other_writers_types_read_as_the_contract(tmp_path):
    """A writer with int32 counters and timezone-naive timestamps (Spark's TIMESTAMP_NTZ) reads
    the same: the naive times are UTC."""
    root = tmp_path / "lake"
    d = root / "status" / "date=2026-11-01"
    d.mkdir(parents=True)
    naive = pa.array([dt.datetime(2026, 11, 1, 9, 30), dt.datetime(2026, 11, 1, 10, 0)], pa.timestamp("us"))
    pq.write_table(pa.table({
        "msg_id": ["a" * 32, "b" * 32], "vehicle_id": ["V1", "V2"], "state": ["online", "offline"], "at": naive,
        "dropped_telemetry": pa.array([4, None], pa.int32()), "models": ['{"battery": {"version": "2.0.0"}}', None],
        "received_at": naive}), d / "part-0.parquet")
    with serving(root) as (url, _):
        st, o = get_json(url + "/api/overview")
        assert st == 200, o
        assert o["as_of"] == "2026-11-01T10:00:00Z"
        assert o["summary"]["vehicles"] == 2
        assert o["summary"]["seen_24h"] == 2 and o["summary"]["offline"] == 1 and o["summary"]["dropped_telemetry"] == 4
        assert o["tables"]["models"]["rows"] == [["battery", "2.0.0", 1]]
        st, v = get_json(url + "/api/vehicle?id=V1")
        assert dict(v["tables"]["status"]["rows"])["at"] == "2026-11-01T09:30:00Z"
