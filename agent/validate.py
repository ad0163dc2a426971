"""Identifiers, text and JSON from outside the agent, validated ONCE at each boundary.

One set of rules for what the MQTT topics, the state DB, file names and the HMI can carry,
used by the config (vehicle id), the downlink (agent.topics), component documents
(agent.components), the HMI (acknowledging "by") and the classify CLI:

  vehicle_id   [A-Za-z0-9_.-]{1,64}, no "..": one MQTT topic level, safe as a file name
  vin          the same rule (real VINs are 17 letters/digits)
  component    1-64 chars: letters/digits (any script), space and _-.,()+ ; starts with a
               letter or digit, no "..", no "/" (it names an alert key and a path)
  text         a str of at most N chars with no lone surrogate (not encodable as UTF-8: it
               would fail later in SQLite, JSON output or the page) and no control
               character other than tab / newline
  JSON         UTF-8; duplicate keys, NaN/Infinity, numbers that overflow to inf, nesting
               deeper than MAX_DEPTH and lone surrogates (also as \\ud800 escapes) are errors

Every check uses fullmatch (`re.match` with `$` accepts a trailing newline: "CAR\\n").
Errors are InvalidInput(ValueError) with a short message naming the field.
"""

from __future__ import annotations

import json
import math
import re

MAX_DEPTH = 32

VEHICLE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
VIN = VEHICLE_ID
_COMPONENT_CHARS = set(" _-.,()+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


class InvalidInput(ValueError):
    pass


def vehicle_id(value, what: str = "vehicle id") -> str:
    if not isinstance(value, str) or not VEHICLE_ID.fullmatch(value) or ".." in value:
        raise InvalidInput(f"{what} must be 1-64 of A-Z a-z 0-9 _ . - (no '..'), got {_show(value)}")
    return value


def vin(value, what: str = "vin") -> str:
    return vehicle_id(value, what)


def component(value, what: str = "component") -> str:
    ok = (isinstance(value, str) and 1 <= len(value) <= 64 and value[0].isalnum() and ".." not in value
          and all(c.isalnum() or c in _COMPONENT_CHARS for c in value))
    if not ok:
        raise InvalidInput(f"{what} must be 1-64 letters, digits, spaces or _-.,()+ "
                           f"starting with a letter or digit, got {_show(value)}")
    return value


def text(value, what: str, max_len: int, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > max_len:
        raise InvalidInput(f"{what} longer than {max_len} characters ({len(value)})")
    if not allow_empty and not value.strip():
        raise InvalidInput(f"{what} is empty")
    if _SURROGATE.search(value):
        raise InvalidInput(f"{what} contains a lone surrogate (not valid Unicode text)")
    if _CONTROL.search(value):
        raise InvalidInput(f"{what} contains a control character")
    return value


def is_text(value: str) -> bool:
    """Encodable as UTF-8 (no lone surrogate)."""
    return not _SURROGATE.search(value)


def _no_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise InvalidInput(f"duplicate key {_show(k)}")
        obj[k] = v
    return obj


def _constant(name):
    raise InvalidInput(f"{name} is not JSON")


def _float(s: str) -> float:
    v = float(s)
    if not math.isfinite(v):
        raise InvalidInput(f"number {s[:20]} out of range")
    return v


def loads_json(data, max_depth: int = MAX_DEPTH):
    """Strict JSON (see module docstring) from bytes (UTF-8) or str. Raises InvalidInput."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"not UTF-8 (byte {exc.start})") from None
    try:
        obj = json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_constant, parse_float=_float)
    except InvalidInput:
        raise
    except (ValueError, RecursionError) as exc:     # JSONDecodeError, int too large to convert
        raise InvalidInput(f"not JSON: {str(exc)[:100]}") from None
    _check_strings(obj, max_depth)
    return obj


def _check_strings(obj, max_depth: int) -> None:
    stack = [(obj, 0)]
    while stack:
        o, depth = stack.pop()
        if isinstance(o, str):
            if _SURROGATE.search(o):
                raise InvalidInput("a string contains a lone surrogate (not valid Unicode text)")
        elif isinstance(o, (dict, list)):
            if depth >= max_depth:
                raise InvalidInput(f"nested deeper than {max_depth} levels")
            items = list(o.keys()) + list(o.values()) if isinstance(o, dict) else o
            stack.extend((x, depth + 1) for x in items)


def _show(value) -> str:
    r = repr(value)
    return r if len(r) <= 60 else r[:57] + "..."
