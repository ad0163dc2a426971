"""`trey-agent classify` input that used to escape the error handling (issue #10 item 7):
a JSON line with an escaped lone surrogate or a 100k-deep id killed the run, NaN / 1e999
ids printed non-JSON, CR-only line ends merged notes. Run as a real process."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def _strict(line: str):
    def bad(name):
        raise AssertionError(f"{name} in output line {line[:80]!r}")
    return json.loads(line, parse_constant=bad)


def _classify(data: bytes):
    return subprocess.run([sys.executable, "-m", "agent.cli", "--log-level", "WARNING", "classify", "-"],
                          input=data, capture_output=True, cwd=ROOT, timeout=180)


def test_hostile_lines_are_errors_and_every_output_line_is_json():
    lines = [
        b'{"id": 1, "text": "\\ud800 steel 2012 good"}',            # escaped lone surrogate in text
        b'{"id": "\\udfff", "text": "steel 2012 good"}',             # ... in the id
        b'{"id": ' + b"[" * 100_000 + b"]" * 100_000 + b', "text": "steel 2012 good"}',
        b'{"id": NaN, "text": "steel 2012 good"}',
        b'{"id": 1e999, "text": "steel 2012 good"}',
        b'{"id": 2, "id": 3, "text": "steel 2012 good"}',            # duplicate key
        b'{"id": {"a": 1}, "text": "steel 2012 good"}',              # not a scalar
        b"x" * 200_000,                                              # a 200k-char line
        b"manufactured in 2019 made of steel in good condition",     # a fine plain note
    ]
    res = _classify(b"\n".join(lines) + b"\n")
    assert b"Traceback" not in res.stderr, res.stderr[-2000:]
    out = [_strict(line) for line in res.stdout.decode("utf-8").splitlines()]
    assert len(out) == len(lines), out
    assert [o["line"] for o in out if "error" in o] == list(range(1, 9))
    assert "compliant" in out[-1] and "error" not in out[-1]
    assert res.returncode == 1


def test_cr_only_line_ends_are_separate_notes():
    notes = [b"manufactured in 1985 made of steel in fair condition",
             b"manufactured in 2019 made of carbon fiber in new condition",
             b"manufactured in 2012 made of plastic in good condition"]
    res = _classify(b"\r".join(notes) + b"\r")
    assert res.returncode == 0, res.stderr[-2000:]
    out = [_strict(line) for line in res.stdout.decode().splitlines()]
    assert [o["text"] for o in out] == [n.decode() for n in notes]
    assert [o["compliant"] for o in out] == [False, True, False]
