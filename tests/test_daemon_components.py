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


@pytest.mark.skipif(not (DEFAULT_COMPLIANCE_BUNDLE / MANIFEST).exists(),
                    reason="shipped compliance bundle agent/models/compliance not built yet")
def test_incomplete_note_raises_the_milder_alert_and_moves_between_kinds(tmp_path):
    """A note without a year is never called compliant: it raises a distinct info-level
    `compliance_incomplete` alert naming what is missing; a complete note clears it, a
    violating one replaces it by the compliance warning."""
    from agent.classify import ComplianceClassifier
    clf = ComplianceClassifier.from_bundle(verify_bundle(DEFAULT_COMPLIANCE_BUNDLE))
    store = StateStore(tmp_path / "state")
    alerts = Alerts(store)
    comps = Components(store, alerts, lambda: (clf, "compliance@test"))
    vin = "WVWZZZ1JZXW000002"

    def apply(note):
        assert comps.apply_document({"vin": vin, "components": [{"component": "water pump", "note": note}]}) == 1
        return {a["kind"]: a for a in alerts.list(active_only=True)}

    active = apply("water pump, aluminium, good condition")            # no year
    assert set(active) == {"compliance_incomplete"}
    a = active["compliance_incomplete"]
    assert a["severity"] == "info" and "incomplete" in a["title"].lower()
    assert a["explanation"]["missing"] == ["year"] and "year" in a["message"]
    (c,) = comps.list()
    assert c["compliant"] is None and c["verdict"] == "undetermined" and c["missing"] == ["year"]
    assert c["alert_id"] == a["id"]
    assert apply("water pump, aluminium, good condition") == active  # same note again: no change
    active = apply("water pump, aluminium, built 2015, good condition")  # the year recorded
    assert active == {}
    assert comps.list()[0]["compliant"] is True
    apply("water pump, aluminium, good condition")
    active = apply("water pump, cast iron, good condition")             # iron: a violation, year or not
    assert set(active) == {"compliance"} and "iron" in active["compliance"]["explanation"]["why"]
    assert comps.list()[0]["compliant"] is False
    store.close()


def test_state_db_from_before_verdicts_is_migrated(tmp_path):
    """A car's state DB written by the previous agent (no verdict/facts columns) keeps
    its rows; they read back with the verdict the boolean implied."""
    store = StateStore(tmp_path / "state")
    with store.transaction() as conn:
        conn.execute("CREATE TABLE components (vin TEXT NOT NULL, component TEXT NOT NULL, note TEXT NOT NULL,"
                     " source TEXT NOT NULL, compliant INTEGER NOT NULL, p_noncompliant REAL NOT NULL,"
                     " why TEXT NOT NULL, model TEXT NOT NULL, updated TEXT NOT NULL, PRIMARY KEY (vin, component))")
        conn.execute("INSERT INTO components VALUES ('V1','horn','steel 2012 good','spec',1,0.01,'[]','m','t')")
    comps = Components(store, Alerts(store), lambda: (None, ""))
    (c,) = comps.list()
    assert c["verdict"] == "compliant" and c["compliant"] is True and c["facts"] is None
    store.close()
