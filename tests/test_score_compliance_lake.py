"""`trey-export score compliance --lake`: one row per component of every scored vehicle in
LAKE/compliance/date=<UTC day of scored_at>/, with the lake's schema and the report's verdicts;
the local and the Spark run write the same rows; a re-run adds a scoring run and the fleet
dashboard counts the latest one (the same non-compliant / undetermined components)."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow.parquet as pq

from agent.bundle import DEFAULT_COMPLIANCE_BUNDLE, verify_bundle
from agent.classify import ComplianceClassifier
from export.lake import tables as LT
from tests.dashboard_support import get_json, serving, table


def _spec(tmp_path):
    from export.cli import main as export_main
    data = tmp_path / "data"
    assert export_main(["data", "compliance", "--notes", "10", "--vehicles", "40", "--seed", "5",
                        "--out", str(data)]) == 0
    spec = data / "specs.jsonl"
    docs = [json.loads(x) for x in spec.read_text().splitlines() if x.strip()]
    for i, d in enumerate(docs[:10]):        # some documents name their vehicle: that id keys the rows
        d["vehicle_id"] = f"veh-{i:03d}"
    # and one whose notes leave facts unstated, so the lake holds undetermined rows whatever
    # the generated notes read as
    docs.append({"vin": "WVWZZZ1JZXW000017", "components": [
        {"component": "alternator", "note": "Alternator: aluminium housing, good condition, no date visible"},
        {"component": "bracket", "note": "Bracket steel, built 2011"}]})
    spec.write_text("".join(json.dumps(d) + "\n" for d in docs)
                    + json.dumps({"vin": "WVWZZZ1JZXW000009", "vehicle_id": "../x",
                                  "components": [{"component": "alternator", "note": "ok"}]}) + "\n")
    return spec, docs


def _expected(report_dir):
    """(vehicle_id, component) -> the report's verdict, facts, missing, why (vehicles.jsonl)."""
    want = {}
    for v in map(json.loads, (report_dir / "vehicles.jsonl").read_text().splitlines()):
        for r in v["verdicts"]:
            want[(v["vehicle_id"], r["component"])] = (
                v["vin"], r["verdict"], r["compliant"], r["facts"]["year"].get("value"),
                tuple(r["facts"][a]["state"] for a in ("year", "material", "condition")),
                r["missing"], r["why"])
    return want


def _got(rows):
    return {(r["vehicle_id"], r["component"]): (
        r["vin"], r["verdict"], r["compliant"], r["year_value"],
        (r["year_state"], r["material_state"], r["condition_state"]), r["missing"], r["why"]) for r in rows}


def _files(lake):
    return sorted((lake / LT.COMPLIANCE).glob("date=*/*.parquet"))


def test_score_compliance_writes_the_lake_table_local_equals_spark_and_the_dashboard_counts_it(tmp_path, spark):
    from export.cli import main as export_main
    from export.compliance.score import score_file
    from export.lake.score_compliance import score_spark
    spec, docs = _spec(tmp_path)
    clf = ComplianceClassifier.from_bundle(verify_bundle(DEFAULT_COMPLIANCE_BUNDLE))
    local = score_file(clf, spec, tmp_path / "rep_local", progress=False, chunk_notes=1,
                       lake=tmp_path / "lake_local")
    sp = score_spark(spark, DEFAULT_COMPLIANCE_BUNDLE, str(spec), tmp_path / "rep_spark", chunk_notes=1,
                     lake=tmp_path / "lake_spark")
    assert local["rejected"] == sp["rejected"] == {"bad_document": 1}      # the bad vehicle_id
    assert local["lake_rows"] == sp["lake_rows"] == local["components"] == sum(len(d["components"]) for d in docs)

    want = _expected(tmp_path / "rep_local")
    assert {k[0] for k in want} == {d.get("vehicle_id", d["vin"]) for d in docs}
    assert {"non_compliant", "undetermined"} <= {w[1] for w in want.values()}   # the data exercises both
    rows = {}
    for name, stats in (("local", local), ("spark", sp)):
        lake = tmp_path / f"lake_{name}"
        files = _files(lake)
        assert files and not list((lake / LT.COMPLIANCE).rglob(".*.tmp"))
        day = dt.datetime.fromisoformat(stats["scored_at"]).astimezone(dt.timezone.utc).date().isoformat()
        assert {f.parent.name for f in files} == {f"date={day}"}
        for f in files:        # the lake's schema: names, order and types (Spark marks every column nullable)
            s = pq.read_schema(f)
            assert [(x.name, x.type) for x in s] == [(x.name, x.type) for x in LT.SCHEMAS[LT.COMPLIANCE]], name
        rows[name] = table(lake, LT.COMPLIANCE)
        assert len(rows[name]) == len(want)
        assert _got(rows[name]) == want, name
        assert {r["model"] for r in rows[name]} == {f"{clf.name}@{clf.version}"}
        assert {str(r["date"]) for r in rows[name]} == {day}
        assert {r["scored_at"].isoformat() for r in rows[name]} == {stats["scored_at"]}
    strip = lambda rs: sorted((json.dumps({k: v for k, v in r.items() if k not in ("scored_at", "date")},  # noqa: E731
                                          sort_keys=True, default=str) for r in rs))
    assert strip(rows["local"]) == strip(rows["spark"])
    year = [r for r in rows["local"] if r["year_state"] != "not_stated"]
    assert year and all(r["year_value"] for r in year)             # the year the model read

    # (explanations depend on which notes share a model call: both runs classify one vehicle at a time)
    # the CLI, a second scoring run into the same lake: a new file, the dashboard takes the latest
    assert export_main(["score", "compliance", str(spec), "--out", str(tmp_path / "rep2"), "--no-progress",
                        "--lake", str(tmp_path / "lake_local")]) == 1          # 1: a line was rejected
    assert len(_files(tmp_path / "lake_local")) == 2
    assert len(table(tmp_path / "lake_local", LT.COMPLIANCE)) == 2 * len(want)
    n_bad = sum(w[1] == "non_compliant" for w in want.values())
    n_und = sum(w[1] == "undetermined" for w in want.values())
    assert (n_bad, n_und) == (local["noncompliant_components"], local["undetermined_components"])
    for name in ("local", "spark"):
        with serving(tmp_path / f"lake_{name}") as (url, _app):
            status, body = get_json(url + "/api/compliance?limit=5000")
        assert status == 200, body
        s = body["summary"]
        assert (s["components"], s["non_compliant"], s["undetermined"]) == (len(want), n_bad, n_und), name
        t = body["tables"]["components"]
        c = {k: t["columns"].index(k) for k in ("vehicle_id", "component", "verdict")}
        listed = {(r[c["vehicle_id"]], r[c["component"]]): r[c["verdict"]] for r in t["rows"]}
        assert listed == {k: w[1] for k, w in want.items() if w[1] != "compliant"}, name
