"""`trey-export score compliance` on Spark gives the single-process path's reports: the same
vehicles in input order, the same verdicts and explanations, the same summary and rejects."""

from __future__ import annotations

import json

from agent.bundle import DEFAULT_COMPLIANCE_BUNDLE, verify_bundle
from agent.classify import ComplianceClassifier


def test_score_compliance_on_spark_equals_the_local_path(tmp_path, spark):
    from export.cli import main as export_main
    from export.compliance.score import score_file
    from export.lake.score_compliance import score_spark
    data = tmp_path / "data"
    assert export_main(["data", "compliance", "--notes", "10", "--vehicles", "80", "--seed", "9",
                        "--out", str(data)]) == 0
    spec = data / "specs.jsonl"
    with open(spec, "ab") as fh:                       # rejects keep their line numbers
        fh.write(b"{not json\n\n# a comment\n" + json.dumps({"vin": "X", "components": []}).encode() + b"\n"
                 + b"\xff\xfe\n")
    lines = spec.read_bytes().splitlines()
    # chunk 1 vehicle's notes at a time in both: the classifier call sees the same notes
    clf = ComplianceClassifier.from_bundle(verify_bundle(DEFAULT_COMPLIANCE_BUNDLE))
    want = score_file(clf, spec, tmp_path / "local", chunk_notes=1, progress=False)
    got = score_spark(spark, DEFAULT_COMPLIANCE_BUNDLE, str(spec), tmp_path / "spark", chunk_notes=1)
    for k in ("vehicles", "components", "noncompliant_components", "noncompliant_vehicles", "rejected"):
        assert got[k] == want[k], k
    assert want["vehicles"] == 80 and sorted(want["rejected"]) == ["bad_document", "bad_json", "not_utf8"]
    for name in ("vehicles.jsonl", "summary.csv"):
        assert (tmp_path / "spark" / name).read_text() == (tmp_path / "local" / name).read_text(), name
    rej = {d: [(r["line"], r["reason"]) for r in map(json.loads, (tmp_path / d / "rejected.jsonl").read_text().splitlines())]
           for d in ("spark", "local")}
    assert rej["spark"] == rej["local"] and [n for n, _ in rej["spark"]] == [len(lines) - 4, len(lines) - 1, len(lines)]
