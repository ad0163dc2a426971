"""Component notes -> verdicts -> one compliance alert per non-compliant component (real
compliance bundle); bad spec lines and cloud documents are rejected and counted, never fatal."""

from __future__ import annotations

import json

import pytest

from agent.alerts import Alerts
from agent.bundle import DEFAULT_COMPLIANCE_BUNDLE, MANIFEST, verify_bundle
from agent.components import Components, read_spec_file
from agent.store import StateStore
from agent.tokenizer import MAX_NOTE_CHARS
from tests.daemon_support import NONCOMPLIANT, SPEC_NOTES, write_spec


def test_spec_file_bad_lines_rejected_rest_loaded(tmp_path):
    spec = write_spec(tmp_path / "c.jsonl")
    with open(spec, "a") as fh:
        fh.write("{not json\n")
        fh.write(json.dumps({"vin": "V", "components": []}) + "\n")
        fh.write(json.dumps({"vin": "V", "components": [{"component": "x", "note": ""}]}) + "\n")
        fh.write(json.dumps({"vin": "V", "components": [{"component": "a", "note": "n"},
                                                        {"component": "a", "note": "m"}]}) + "\n")
        # the same length limit as `trey-agent classify`: a long note is kept, a longer one refused
        long = "steel bracket in good condition manufactured in 2015 " * 40
        fh.write(json.dumps({"vin": "V", "components": [{"component": "long", "note": long[:MAX_NOTE_CHARS]}]}) + "\n")
        fh.write(json.dumps({"vin": "V", "components": [{"component": "too long", "note": long[:MAX_NOTE_CHARS + 1]}]})
                 + "\n")
        fh.write("\n# comment\n")
    docs, rejected = read_spec_file(spec)
    assert len(docs) == 2 and len(docs[0]["components"]) == len(SPEC_NOTES)
    assert docs[1]["components"][0]["component"] == "long"
    assert rejected == {"bad_json": 1, "bad_document": 4}


@pytest.mark.skipif(not (DEFAULT_COMPLIANCE_BUNDLE / MANIFEST).exists(),
                    reason="shipped compliance bundle agent/models/compliance not built yet")
def test_verdicts_alerts_and_no_duplicates(tmp_path):
    from agent.classify import ComplianceClassifier
    clf = ComplianceClassifier.from_bundle(verify_bundle(DEFAULT_COMPLIANCE_BUNDLE))
    store = StateStore(tmp_path / "state")
    alerts = Alerts(store)
    comps = Components(store, alerts, lambda: (clf, "compliance@test"))
    changes = []
    alerts.add_listener(lambda a: changes.append((a["change"], a["explanation"]["component"])))
    assert comps.load_spec(write_spec(tmp_path / "c.jsonl")) == len(SPEC_NOTES)
    raised = {c for ch, c in changes if ch == "raised"}
    assert raised == NONCOMPLIANT
    for a in alerts.list(kind="compliance"):
        assert a["explanation"]["why"], a                     # the words that drove it
        assert a["explanation"]["component"] in a["title"].lower()
    listed = {c["component"]: c for c in comps.list()}
    assert {n for n, c in listed.items() if not c["compliant"]} == NONCOMPLIANT
    assert all(c["alert_id"] for n, c in listed.items() if not c["compliant"])

    # Same notes again (restart, SIGHUP): nothing changes.
    changes.clear()
    comps.load_spec(tmp_path / "c.jsonl")
    assert changes == []
    # A cloud document fixes the alternator (new part): its alert clears; bad documents rejected.
    assert comps.apply_document(json.dumps({"vin": "WVWZZZ1JZXW000001", "components": [
        {"component": "alternator", "note": "manufactured in 2021 made of steel in new condition"}]})) == 1
    assert changes == [("cleared", "alternator")]
    assert comps.apply_document(b"\xff garbage") == 0
    assert comps.apply_document({"vin": "V" * 200, "components": [{"component": "a", "note": "b"}]}) == 0
    assert comps.rejected == {"bad_json": 1, "bad_document": 1}
    store.close()
