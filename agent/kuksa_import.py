"""Eclipse Kuksa dbc2val mapping (VSS JSON) -> our signal-map TOML.

Kuksa's file is a VSS tree (`{"Vehicle": {"children": {...}}}`); a leaf it feeds from the bus
carries `"dbc2vss": {"signal": ..., "transform": {"math": "x*0.1"} | {"mapping": [{"from": .., "to": ..}]}}`
(older files: `"dbc"`). We keep the leaves whose VSS path is one of our canonical names, find
the DBC message of each signal, turn a linear `math` into factor/offset and a `mapping` into
`choices` (DBC value names -> ignition state) or `mapping` (values). Anything we cannot express
(a non-linear math, a VSS path we do not use, a signal missing from the DBC) is reported, one
line each, and left out.
"""

from __future__ import annotations

import ast
import json
import operator

from agent import signals

# Kuksa/VSS ignition values -> ours
_STATES = {"OFF": "OFF", "LOCK": "OFF", "ACC": "ACC", "ON": "ON", "START": "START"}
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


class KuksaImportError(ValueError):
    pass


def _leaves(node: dict, path: str):
    if not isinstance(node, dict):
        return
    spec = node.get("dbc2vss") or node.get("dbc")
    if isinstance(spec, dict) and path:
        yield path, spec
    children = node.get("children")
    if isinstance(children, dict):
        for k, v in children.items():
            yield from _leaves(v, f"{path}.{k}" if path else k)


def linear(expr: str) -> tuple[float, float]:
    """(factor, offset) of a Kuksa math expression in x, if it is linear; else ValueError."""
    tree = ast.parse(expr.strip(), mode="eval").body

    def ev(n, x):
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)) and not isinstance(n.value, bool):
            return n.value
        if isinstance(n, ast.Name) and n.id == "x":
            return x
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.UAdd)):
            v = ev(n.operand, x)
            return -v if isinstance(n.op, ast.USub) else v
        if isinstance(n, ast.BinOp) and type(n.op) in _OPS:
            return _OPS[type(n.op)](ev(n.left, x), ev(n.right, x))
        raise ValueError(f"not a linear expression in x: {expr!r}")
    b = ev(tree, 0.0)
    a = ev(tree, 1.0) - b
    for x in (2.0, -3.5, 1000.0):
        if abs(ev(tree, x) - (a * x + b)) > 1e-9 * max(1.0, abs(a * x + b)):
            raise ValueError(f"not a linear expression in x: {expr!r}")
    if a == 0:
        raise ValueError(f"constant expression: {expr!r}")
    return a, b


def convert(doc: dict, db) -> tuple[dict, list[str]]:
    """(entries for a signal map, notes on what was left out)."""
    entries: dict = {}
    notes: list[str] = []
    by_signal: dict = {}
    for m in db.messages:
        for s in m.signals:
            by_signal.setdefault(s.name, []).append((m, s))
    if not isinstance(doc, dict):
        raise KuksaImportError("not a VSS JSON tree (expected an object such as {\"Vehicle\": {...}})")
    leaves = [leaf for k, v in doc.items() for leaf in _leaves(v, k)]
    for path, spec in leaves:
        if path not in signals.ALL:
            notes.append(f"{path}: not a canonical signal of trey-edge, left out")
            continue
        name = spec.get("signal")
        found = by_signal.get(name) if isinstance(name, str) else None
        if not found:
            notes.append(f"{path}: signal {name!r} not in the DBC, left out")
            continue
        msg, sig = found[0]
        if len(found) > 1:
            notes.append(f"{path}: signal {name} is in {len(found)} messages; using {msg.name}")
        entry: dict = {"message": msg.name, "signal": sig.name}
        t = spec.get("transform") or {}
        try:
            if "math" in t:
                a, b = linear(str(t["math"]))
                if (a, b) != (1.0, 0.0):
                    entry["factor"], entry["offset"] = a, b
            if "mapping" in t:
                entry.update(_mapping(path, t["mapping"], sig))
        except (ValueError, SyntaxError, TypeError) as exc:
            notes.append(f"{path}: {exc}; left out")
            continue
        entries[path] = entry
    if not entries:
        raise KuksaImportError("no entry of the Kuksa mapping binds a trey-edge canonical signal")
    return entries, notes


def _mapping(path: str, items, sig) -> dict:
    if not isinstance(items, list):
        raise ValueError("mapping must be a list of {from, to}")
    name_to_raw = {str(v): int(k) for k, v in (sig.choices or {}).items()}
    enum = path == signals.SYSTEM_STATE
    choices, pairs = {}, []
    for it in items:
        frm, to = it.get("from"), it.get("to")
        if enum:
            state = _STATES.get(str(to).upper())
            if state is None:
                continue                              # e.g. UNDEFINED: not a state we count
            if isinstance(frm, str) and frm in name_to_raw:
                choices[frm] = state
            else:
                pairs.append({"from": _number(frm, name_to_raw, sig), "to": state})
        else:
            if isinstance(to, bool) or not isinstance(to, (int, float)):
                to = float(to)
            pairs.append({"from": _number(frm, name_to_raw, sig), "to": to})
    if choices and pairs:
        raise ValueError("mapping mixes DBC value names and numbers")
    return {"choices": choices} if choices else {"mapping": pairs}


def _number(frm, name_to_raw, sig):
    if isinstance(frm, str):
        if frm in name_to_raw:
            raw = name_to_raw[frm]
            return raw * sig.scale + sig.offset
        frm = float(frm)
    if isinstance(frm, bool) or not isinstance(frm, (int, float)):
        raise ValueError(f"mapping value {frm!r} is not a number nor a DBC value name")
    return frm


def to_toml(entries: dict, source: str, dbc: str) -> str:
    lines = [f"# Imported from the Kuksa dbc2val mapping {source} for the DBC {dbc}",
             "# (trey-agent map import-kuksa). Review before use.", ""]
    for name, e in entries.items():
        lines.append(f'[signals."{name}"]')
        for k, v in e.items():
            lines.append(f"{k} = {_lit(v)}")
        lines.append("")
    return "\n".join(lines)


def _lit(v) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k) if not k.isidentifier() else k} = {_lit(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_lit(x) for x in v) + "]"
    return repr(v)
