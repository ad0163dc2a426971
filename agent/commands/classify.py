"""trey-agent classify [--bundle DIR|TAR] [FILE|-]

Reads one note per line — plain text, or JSON lines {"id": ..., "text": ...} — and writes one
JSON line per input line, in order:
    {"id" (if given), "text", "verdict", "compliant", "p_noncompliant", "why": [words],
     "facts": {"year": {"state", "value", "p", "why"}, "material": {...}, "condition": {...}},
     "missing": [attributes not stated]}
verdict is compliant / non_compliant / undetermined (agent/regulation.py: a note that leaves
a fact out and violates nothing is undetermined, never compliant); `compliant` is true /
false / null accordingly; a fact's state is violates / complies / not_stated. A fact the model
leaned to but was not sure enough of (agent/regulation.read_fact) is not_stated and carries
"unsure": {"state", "p"}.
Lines end at LF, CRLF or a lone CR. A line that is empty, longer than 2,000 characters, not
UTF-8, JSON the agent refuses (a lone surrogate, NaN/1e999, duplicate keys, nesting deeper
than 32), an "id" that is not a string/number, or a JSON object with an "id" but no string
"text" gets {"line": n, ("id",) "error": "..."} instead; the run goes on and
the exit status is 1 if any line failed (2 if the bundle is refused). ONNX Runtime only."""

from __future__ import annotations

import json
import sys

from agent import validate
from agent.lines import MAX_LINE_BYTES, iter_lines
from agent.tokenizer import MAX_NOTE_CHARS

CHUNK = 256          # lines classified per model call (streams any input size)


def configure(p) -> None:
    p.add_argument("input", nargs="?", default="-", help="file of notes, or - for stdin (default)")
    p.add_argument("--bundle", default=None, help="compliance bundle dir or .tar (default: shipped)")
    p.add_argument("--trusted-keys", default=None, help="public key file/dir (default: development keys)")
    p.add_argument("--no-why", action="store_true", help="skip the occlusion explanation")


def _json_id(v) -> bool:
    """An id is echoed back in the output: only plain JSON scalars that print as JSON."""
    if v is None or isinstance(v, bool):
        return True
    if isinstance(v, int):
        return abs(v) < 2 ** 63
    if isinstance(v, float):
        return v == v and v not in (float("inf"), float("-inf"))
    return isinstance(v, str) and len(v) <= 200 and validate.is_text(v)


def _parse_json_line(line: str):
    """-> (object, None) for a strict-JSON line, (None, reason) for JSON the agent refuses
    (lone surrogate, NaN, 1e999, duplicate keys, too deep), (None, None) for not JSON at all."""
    try:
        return validate.loads_json(line), None
    except validate.InvalidInput as exc:
        strict_reason = str(exc)
    try:
        json.loads(line)
    except RecursionError:
        return None, "JSON nested too deeply"
    except ValueError:
        if "nested deeper" in strict_reason:
            return None, strict_reason
        return None, None                # a plain note that happens to start with "{"
    return None, strict_reason


def parse_line(raw: bytes, lineno: int) -> dict:
    """-> {"line", "id"?, "text"} or {"line", "id"?, "error"}. Input rules: agent.validate."""
    rec: dict = {"line": lineno}
    if len(raw) > MAX_LINE_BYTES:
        rec["error"] = f"line longer than {MAX_LINE_BYTES} bytes"
        return rec
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        rec["error"] = f"not UTF-8 (byte {exc.start})"
        return rec
    line = line.rstrip("\r\n")
    text = line
    if line.lstrip().startswith("{"):
        obj, refused = _parse_json_line(line)
        if refused:
            rec["error"] = f"invalid JSON line: {refused}"
            return rec
        if isinstance(obj, dict) and "id" in obj and not _json_id(obj["id"]):
            rec["error"] = "\"id\" must be a string (<= 200 chars), a number or null"
            return rec
        if isinstance(obj, dict) and "id" in obj and "text" not in obj:
            rec["id"] = obj["id"]
            rec["error"] = "JSON line without \"text\""
            return rec
        if isinstance(obj, dict) and "text" in obj:
            if "id" in obj:
                rec["id"] = obj["id"]
            text = obj["text"]
            if not isinstance(text, str):
                rec["error"] = "\"text\" is not a string"
                return rec
    if not text.strip():
        rec["error"] = "empty note"
    elif len(text) > MAX_NOTE_CHARS:
        rec["error"] = f"note longer than {MAX_NOTE_CHARS} characters ({len(text)})"
    else:
        try:
            rec["text"] = validate.text(text, "note", MAX_NOTE_CHARS)
        except validate.InvalidInput as exc:
            rec["error"] = str(exc)
    return rec


def classify_stream(clf, lines, out, explain: bool = True) -> tuple[int, int]:
    """Classify an iterable of raw byte lines, writing JSON lines to `out`. -> (ok, failed)."""
    ok = failed = 0
    pending: list[dict] = []

    def flush():
        nonlocal ok, failed
        todo = [r for r in pending if "text" in r]
        verdicts = iter(clf.classify([r["text"] for r in todo], explain=explain)) if todo else iter(())
        for r in pending:
            if "error" in r:
                failed += 1
                out.write(json.dumps(r, ensure_ascii=False) + "\n")
            else:
                ok += 1
                v = next(verdicts)
                res = ({"id": r["id"]} if "id" in r else {}) | {"text": r["text"]} | v
                out.write(json.dumps(res, ensure_ascii=False) + "\n")
        out.flush()
        pending.clear()

    for lineno, raw in enumerate(lines, 1):
        pending.append(parse_line(raw, lineno))
        if len(pending) >= CHUNK:
            flush()
    flush()
    return ok, failed


def main(args) -> int:
    import logging

    from agent.bundle import DEFAULT_COMPLIANCE_BUNDLE, BundleError, verify_bundle
    from agent.classify import ComplianceClassifier

    log = logging.getLogger("trey.classify")
    try:
        bundle = verify_bundle(args.bundle or DEFAULT_COMPLIANCE_BUNDLE, args.trusted_keys)
        clf = ComplianceClassifier.from_bundle(bundle)
    except (BundleError, ValueError) as exc:
        log.error("compliance bundle refused: %s", exc)
        return 2
    try:
        fh = sys.stdin.buffer if args.input == "-" else open(args.input, "rb")
    except OSError as exc:
        log.error("cannot read %s: %s", args.input, exc)
        return 2
    with fh:
        # LF, CRLF or CR-only line ends; a huge line is never held whole (agent.lines).
        ok, failed = classify_stream(clf, iter_lines(fh), sys.stdout, explain=not args.no_why)
    if failed:
        log.warning("%d of %d lines failed", failed, ok + failed)
    return 1 if failed else 0
