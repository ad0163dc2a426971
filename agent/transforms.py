"""Signal transforms a real bus needs, on top of a binding's DBC signal (after Eclipse Kuksa
dbc2val's per-signal `math`/`mapping` transforms). Declared per entry in the signal map:

    terminals = { START = "ZAS_Kl_50", ON = "ZAS_Kl_15", ACC = "ZAS_Kl_S" }
        ignition state from terminal bits of the entry's message: the first of START, ON, ACC
        whose bit is set wins, none set = OFF; "!Bit" means the bit set = that state is *off*
        (e.g. BMW's `ON = "!IgnitionOff"`). Takes the place of `signal`.
    mapping = [ { from = 0, to = "OFF" }, { from = 1, to = "ON" } ]
        the DBC signal's physical value -> the canonical value (a state for the ignition, a
        number otherwise); a value the mapping does not list is dropped as `sentinel`.
    valid = { signal = "ESP_QBit_v_Signal", values = [0] }
        a quality/validity signal of the same message: the value is used only when the
        validity signal's physical value is one of `values`, else dropped as `invalid`.
    factor / offset (linear math, canonical = physical * factor + offset) are the binding's own.

Only messages with a transform pay for one: the decoder still compiles the extraction, and runs
the steps below on the extracted dict (hidden "~" keys carry the auxiliary signals).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent import signals

TRANSFORM_KEYS = ("terminals", "mapping", "valid")
_TERMINAL_ORDER = ("START", "ON", "ACC")


class TransformError(ValueError):
    pass


@dataclass(frozen=True)
class Transform:
    terminals: tuple | None = None        # ((state, signal, inverted), ...) in START, ON, ACC order
    mapping: tuple | None = None          # ((from, to), ...)
    valid: tuple | None = None            # (signal, frozenset(values))

    def aux_signals(self) -> list[str]:
        """DBC signals (of the binding's message) the transform reads besides the binding's own."""
        out = [s for _, s, _ in self.terminals] if self.terminals else []
        if self.valid:
            out.append(self.valid[0])
        return out


def parse(canonical: str, spec: dict, msg, where: str) -> Transform | None:
    """The transform of one map entry (None without one); errors name the item."""
    if not any(k in spec for k in TRANSFORM_KEYS):
        return None
    enum = canonical == signals.SYSTEM_STATE
    names = {s.name for s in msg.signals}
    terminals = mapping = valid = None
    if "terminals" in spec:
        t = spec["terminals"]
        if not enum:
            raise TransformError(f"{where}.terminals: only {signals.SYSTEM_STATE} is derived from terminal bits")
        if not isinstance(t, dict) or not t:
            raise TransformError(f"{where}.terminals: must map START/ON/ACC to signal names")
        for state, sig in t.items():
            if state not in _TERMINAL_ORDER:
                raise TransformError(f"{where}.terminals.{state}: not one of START, ON, ACC (none set = OFF)")
            if not isinstance(sig, str) or sig.lstrip("!") not in names:
                raise TransformError(f"{where}.terminals.{state}: {sig!r} is not a signal of message {msg.name}")
        terminals = tuple((st, t[st].lstrip("!"), t[st].startswith("!")) for st in _TERMINAL_ORDER if st in t)
        if "mapping" in spec or "signal" in spec or "choices" in spec:
            raise TransformError(f"{where}.terminals: replaces signal/choices/mapping; give only one")
    if "mapping" in spec:
        m = spec["mapping"]
        if not isinstance(m, list) or not m:
            raise TransformError(f"{where}.mapping: must be a list of {{ from = <value>, to = <value> }}")
        pairs = []
        for i, item in enumerate(m):
            if not isinstance(item, dict) or set(item) != {"from", "to"}:
                raise TransformError(f"{where}.mapping[{i}]: must be {{ from = <value>, to = <value> }}")
            frm, to = item["from"], item["to"]
            if isinstance(frm, bool) or not isinstance(frm, (int, float)):
                raise TransformError(f"{where}.mapping[{i}].from: must be a number, got {frm!r}")
            if enum and to not in signals.SYSTEM_STATES:
                raise TransformError(f"{where}.mapping[{i}].to: {to!r} is not one of {', '.join(signals.SYSTEM_STATES)}")
            if not enum and (isinstance(to, bool) or not isinstance(to, (int, float))):
                raise TransformError(f"{where}.mapping[{i}].to: must be a number, got {to!r}")
            pairs.append((frm, to))
        if "choices" in spec:
            raise TransformError(f"{where}.mapping: give either choices or mapping")
        mapping = tuple(pairs)
    if "valid" in spec:
        v = spec["valid"]
        if not isinstance(v, dict) or set(v) != {"signal", "values"}:
            raise TransformError(f"{where}.valid: must be {{ signal = \"<name>\", values = [<valid values>] }}")
        if not isinstance(v["signal"], str) or v["signal"] not in names:
            raise TransformError(f"{where}.valid.signal: {v['signal']!r} is not a signal of message {msg.name}")
        vals = v["values"]
        if not isinstance(vals, list) or not vals or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in vals):
            raise TransformError(f"{where}.valid.values: must be a non-empty list of numbers")
        valid = (v["signal"], frozenset(vals))
    return Transform(terminals, mapping, valid)


def hidden(kind: str, canonical: str, signal: str) -> str:
    return f"~{kind}:{canonical}:{signal}"


def build_post(bindings, drop):
    """One function applying every transform of a message's bindings to its extracted dict, in
    place; drop(reason, name) counts a dropped value. Returns None when no binding has one."""
    steps = []
    for b in bindings:
        t = b.transform
        if t is None:
            continue
        c = b.canonical
        if t.terminals:
            keys = [(st, hidden("t", c, sig), inv) for st, sig, inv in t.terminals]
            steps.append(_terminals_step(c, keys))
        if t.mapping:
            steps.append(_mapping_step(c, hidden("m", c, b.signal), dict(t.mapping), b, drop))
        if t.valid:
            steps.append(_valid_step(c, hidden("v", c, t.valid[0]), t.valid[1], drop))
    if not steps:
        return None

    def post(d: dict) -> dict:
        for step in steps:
            step(d)
        return d
    return post


def _terminals_step(canonical, keys):
    def step(d):
        state = "OFF"
        missing = False
        for st, key, inv in keys:
            v = d.pop(key, None)
            if v is None:
                missing = True
            elif state == "OFF" and bool(v) != inv:
                state = st
        if not missing:
            d[canonical] = state
    return step


def _mapping_step(canonical, key, table, b, drop):
    def step(d):
        if key not in d:
            return
        v = table.get(d.pop(key))
        if v is None:
            drop("sentinel", canonical)
        else:
            d[canonical] = v
    return step


def _valid_step(canonical, key, values, drop):
    def step(d):
        q = d.pop(key, None)
        if q is None or q not in values:
            if d.pop(canonical, None) is not None:
                drop("invalid", canonical)
    return step
