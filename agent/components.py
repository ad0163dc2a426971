"""Component notes -> compliance verdicts -> compliance alerts.

Notes come from the local `[components] spec` file (JSON lines, agent/schema.py):
    {"vin": "...", "components": [{"component": "alternator", "note": "manufactured in 1985 ..."}]}
and later from the cloud (MQTT components downlink, same document shape, `apply_document`).

Each note is classified with the compliance bundle; the verdict per (vin, component) is kept
in the state DB (table `components`: verdict, facts), and
- a non-compliant component raises one alert naming it ("compliance:<vin>:<component>",
  kind `compliance`, warning) whose explanation is the words that made it non-compliant;
- an UNDETERMINED component (the note leaves out a fact and nothing in it violates,
  agent/regulation.py) raises a distinct, milder alert ("incomplete:<vin>:<component>",
  kind `compliance_incomplete`, info): "note incomplete — have the component's
  year/condition recorded", naming the missing facts;
- a compliant component clears both. Re-applying the same notes with the same model
  changes nothing (no duplicate alerts after a restart).

Bad documents/lines are rejected, counted per reason and logged once per reason.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from agent import validate
from agent.alerts import utc_now
from agent.tokenizer import MAX_NOTE_CHARS

log = logging.getLogger(__name__)

MAX_COMPONENTS_PER_DOC = 500
CLASSIFY_BATCH = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS components (
    vin         TEXT NOT NULL,
    component   TEXT NOT NULL,
    note        TEXT NOT NULL,
    source      TEXT NOT NULL,
    compliant   INTEGER NOT NULL,
    p_noncompliant REAL NOT NULL,
    why         TEXT NOT NULL,      -- JSON list of words
    model       TEXT NOT NULL,      -- bundle name@version that gave the verdict
    updated     TEXT NOT NULL,
    verdict     TEXT,               -- compliant / non_compliant / undetermined (NULL: older rows)
    facts       TEXT,               -- JSON {attribute: {state, value?}} and missing
    PRIMARY KEY (vin, component)
)
"""
_MIGRATIONS = ("ALTER TABLE components ADD COLUMN verdict TEXT", "ALTER TABLE components ADD COLUMN facts TEXT")
ALERT_INCOMPLETE = "compliance_incomplete"


def _verdict_of(v: dict) -> str:
    """Classifier result -> verdict (older results carry only the boolean)."""
    return v.get("verdict") or ("compliant" if v.get("compliant") else "non_compliant")


class SpecError(ValueError):
    """A components document that cannot be used; the message says why."""


def parse_document(doc) -> tuple[str, list[tuple[str, str]]]:
    """Validate one spec document -> (vin, [(component, note), ...]). Raises SpecError."""
    if not isinstance(doc, dict):
        raise SpecError("document is not a JSON object")
    vin = doc.get("vin")
    try:
        validate.vin(vin)
    except validate.InvalidInput as exc:
        raise SpecError(str(exc)) from None
    comps = doc.get("components")
    if not isinstance(comps, list) or not comps:
        raise SpecError("components missing or empty")
    if len(comps) > MAX_COMPONENTS_PER_DOC:
        raise SpecError(f"more than {MAX_COMPONENTS_PER_DOC} components")
    out, seen = [], set()
    for c in comps:
        if not isinstance(c, dict):
            raise SpecError("component entry is not an object")
        name, note = c.get("component"), c.get("note")
        try:   # one rule set for names and text (agent.validate): no "../", no lone surrogates
            name = validate.component(name.strip() if isinstance(name, str) else name)
            validate.text(note, f"note of {name!r}", MAX_NOTE_CHARS)
        except validate.InvalidInput as exc:
            raise SpecError(str(exc)) from None
        if name in seen:
            raise SpecError(f"component {name!r} listed twice")
        seen.add(name)
        out.append((name, note.strip()))
    return vin, out


def read_spec_file(path: str | Path) -> tuple[list[dict], dict[str, int]]:
    """JSON-lines spec file -> (documents, rejected {reason: count}). Blank lines and
    '#' comments are skipped; a bad line is rejected, the rest still load."""
    docs, rejected = [], {}
    # Bytes that are not UTF-8 become lone surrogates, which the strict parser rejects per line.
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                doc = validate.loads_json(line)
                parse_document(doc)
            except (ValueError, SpecError) as exc:
                reason = "bad_json" if not isinstance(exc, SpecError) else "bad_document"
                if reason not in rejected:
                    log.warning("components spec %s:%d rejected (%s): %s", path, lineno, reason, exc)
                rejected[reason] = rejected.get(reason, 0) + 1
                continue
            docs.append(doc)
    return docs, rejected


def _classify(clf, texts: list[str]) -> list[dict]:
    """A few notes per ONNX Runtime call: the session's memory arena keeps the high-water
    mark of the largest batch it ever ran (each note is ~16 occlusion rows), so small
    batches keep the agent's RSS down at no real cost (well under 1 ms per note)."""
    out: list[dict] = []
    for i in range(0, len(texts), CLASSIFY_BATCH):
        out.extend(clf.classify(texts[i:i + CLASSIFY_BATCH]))
    return out


class Components:
    """Verdicts + alerts for component notes. `classifier` is a callable returning the
    current (ComplianceClassifier, label) so a hot-swapped model is picked up."""

    def __init__(self, store, alerts, classifier, limits=None):
        from agent.component_bounds import ComponentLimits
        self.store = store
        self.alerts = alerts
        self._classifier = classifier
        self.limits = limits or ComponentLimits()
        self._lock = threading.Lock()
        self.rejected: dict[str, int] = {}
        self._listeners: list = []
        with store.transaction() as conn:
            conn.execute(_SCHEMA)
            cols = {r[1] for r in conn.execute("PRAGMA table_info(components)")}
            for stmt in _MIGRATIONS:            # a state DB from before verdict/facts
                if stmt.split()[-2] not in cols:
                    conn.execute(stmt)

    def add_listener(self, fn) -> None:
        """fn() after a change (HMI event stream; it reads list() when it pushes, coalesced:
        a flood of documents does not re-serialise the whole list per change)."""
        self._listeners.append(fn)

    def reject(self, reason: str, detail: str) -> None:
        if reason not in self.rejected:
            log.warning("components document rejected (%s): %s", reason, detail)
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def load_spec(self, path: str | Path, source: str = "spec") -> int:
        """Apply every document of a spec file; returns the number of notes applied."""
        try:
            docs, rejected = read_spec_file(path)
        except OSError as exc:
            self.reject("unreadable_spec", f"{path}: {exc}")
            return 0
        for reason, n in rejected.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + n
        return sum(self.apply_document(d, source) for d in docs)

    def apply_document(self, doc, source: str = "cloud") -> int:
        """Classify one document's notes, store verdicts, raise/clear alerts. Bad input is
        rejected (counted, logged once per kind) and returns 0."""
        if isinstance(doc, (bytes, str)):
            try:
                doc = validate.loads_json(doc)
            except ValueError as exc:
                self.reject("bad_json", str(exc))
                return 0
        try:
            vin, notes = parse_document(doc)
        except SpecError as exc:
            self.reject("bad_document", str(exc))
            return 0
        refusal = self.limits.check(self.store, vin, [n for n, _ in notes])
        if refusal:
            self.reject(*refusal)
            return 0
        clf, label = self._classifier()
        if clf is None:
            self.reject("no_model", "no compliance model loaded")
            return 0
        verdicts = _classify(clf, [n for _, n in notes])
        with self._lock:
            for (name, note), v in zip(notes, verdicts):
                self._store_verdict(vin, name, note, source, v, label)
        self._changed()
        return len(notes)

    def reclassify_all(self) -> int:
        """Re-run the current model over every stored note (after a model swap)."""
        with self.store.transaction() as conn:
            rows = conn.execute("SELECT vin, component, note, source FROM components").fetchall()
        clf, label = self._classifier()
        if not rows or clf is None:
            return 0
        verdicts = _classify(clf, [r[2] for r in rows])
        with self._lock:
            for (vin, name, note, source), v in zip(rows, verdicts):
                self._store_verdict(vin, name, note, source, v, label)
        self._changed()
        return len(rows)

    def _store_verdict(self, vin, name, note, source, v, label) -> None:
        verdict = _verdict_of(v)
        p = round(float(v["p_noncompliant"]), 4)
        why = [str(w) for w in v.get("why", [])]
        facts = v.get("facts")
        missing = [str(m) for m in v.get("missing") or []]
        fjson = json.dumps({"facts": facts, "missing": missing}, sort_keys=True) if facts else None
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO components(vin,component,note,source,compliant,p_noncompliant,why,model,updated,verdict,facts) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(vin,component) DO UPDATE SET note=excluded.note,"
                "source=excluded.source,compliant=excluded.compliant,p_noncompliant=excluded.p_noncompliant,"
                "why=excluded.why,model=excluded.model,updated=excluded.updated,verdict=excluded.verdict,"
                "facts=excluded.facts",
                (vin, name, note, source, int(verdict == "compliant"), p, json.dumps(why), label, utc_now(),
                 verdict, fjson))
        key, key_incomplete = f"compliance:{vin}:{name}", f"incomplete:{vin}:{name}"
        if verdict != "non_compliant":
            self.alerts.clear(key)
        if verdict != "undetermined":
            self.alerts.clear(key_incomplete)
        if verdict == "compliant":
            return
        if verdict == "undetermined":
            what = "/".join(missing) or "year/material/condition"
            self.alerts.raise_or_update(
                key_incomplete, ALERT_INCOMPLETE, "info",
                title=f"{name.capitalize()}: note incomplete",
                message=f"Note incomplete — have the {name}'s {what} recorded.",
                explanation={"component": name, "vin": vin, "note": note, "missing": missing, "why": why,
                             "facts": facts, "model": label,
                             "summary": f"The note does not state the {' or '.join(missing) or 'facts'}; "
                                        "nothing in it breaks the regulation."})
            return
        words = ", ".join(f"“{w}”" for w in why) or "the note as a whole"
        self.alerts.raise_or_update(
            key, "compliance", "warning",
            title=f"{name.capitalize()} out of compliance",
            message=f"The {name} does not meet the component regulation — have it checked at your next service.",
            explanation={"component": name, "vin": vin, "note": note, "why": why,
                         "p_noncompliant": p, "model": label, **({"facts": facts} if facts else {}),
                         "summary": f"Non-compliant because of {words}."})

    def list(self) -> list[dict]:
        with self.store.transaction() as conn:
            rows = conn.execute(
                "SELECT c.vin,c.component,c.note,c.source,c.compliant,c.p_noncompliant,c.why,c.model,c.updated,"
                "COALESCE(a.id, b.id),c.verdict,c.facts "
                "FROM components c LEFT JOIN alerts a ON a.key = 'compliance:' || c.vin || ':' || c.component "
                "AND a.state != 'cleared' LEFT JOIN alerts b ON b.key = 'incomplete:' || c.vin || ':' || c.component "
                "AND b.state != 'cleared' ORDER BY c.vin, c.component").fetchall()
        out = []
        for r in rows:
            verdict = r[10] or ("compliant" if r[4] else "non_compliant")
            f = json.loads(r[11]) if r[11] else {}
            out.append({"vin": r[0], "component": r[1], "note": r[2], "source": r[3],
                        "compliant": {"compliant": True, "non_compliant": False}.get(verdict),
                        "verdict": verdict, "p_noncompliant": r[5], "why": json.loads(r[6]),
                        "facts": f.get("facts"), "missing": f.get("missing", []), "model": r[7],
                        "updated": r[8], "alert_id": r[9]})
        return out

    def _changed(self) -> None:
        for fn in self._listeners:
            try:
                fn()
            except Exception:
                log.exception("components listener failed")
