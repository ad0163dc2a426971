"""CAN frame -> canonical sample values, through the DBC + signal map. Pure, no I/O.

    dec = Decoder(load_signal_map())
    view = dec.decode(msg)        # {canonical name: value} or None (dropped; dec.counts says why)

Every mapped message is compiled once into a small generated Python function that pulls each
mapped signal out of the payload with shift/mask, checks it against the DBC [min|max] in raw
integer space and scales it (raw * scale + offset, then the map's factor/offset). That is the
fast path (~10x cantools' generic decode); messages it cannot express (big-endian, float or
multiplexed signals) fall back to cantools with the same checks, so any DBC works.

Drop reasons (names fixed in shared_decisions.md; the simulator reports the same):
- `unknown_id`   ID not carried by the signal map (ignored cheaply, counted)
- `bad_dlc`      payload length differs from the DBC message length
- `out_of_range` any mapped signal outside its DBC [min|max] (whole frame dropped, counted once)
- `undecodable`  remote/error frames on a mapped ID, enum values without a name, decoder errors
- `no_time`      counted by the rollup (samples before the first vehicle-time value)
"""

from __future__ import annotations

import logging
import math

from agent.signal_map import SignalMap

log = logging.getLogger("agent.decode")

REASONS = ("unknown_id", "bad_dlc", "out_of_range", "undecodable", "no_time")

# Sentinels returned by the compiled extractors.
_OOR = 1
_UNDEC = 2


def _raw_bounds(sig) -> tuple[int, int]:
    """Inclusive raw-integer range allowed by the DBC [min|max] (and the field width)."""
    if sig.is_signed:
        lo, hi = -(1 << (sig.length - 1)), (1 << (sig.length - 1)) - 1
    else:
        lo, hi = 0, (1 << sig.length) - 1
    scale = float(getattr(sig, "scale", 1) or 1)
    offset = float(getattr(sig, "offset", 0) or 0)
    mn, mx = sig.minimum, sig.maximum
    if scale < 0:
        mn, mx = mx, mn
    if mn is not None:
        lo = max(lo, math.ceil((mn - offset) / scale - 1e-6))
    if mx is not None:
        hi = min(hi, math.floor((mx - offset) / scale + 1e-6))
    return lo, hi


def _fast_ok(msg, sigs) -> bool:
    if msg.is_multiplexed():
        return False
    for s in sigs:
        if s.byte_order != "little_endian" or s.is_float or s.start + s.length > 8 * msg.length:
            return False
    return True


class _Compiled:
    __slots__ = ("fn", "length", "name")

    def __init__(self, fn, length, name):
        self.fn, self.length, self.name = fn, length, name


class Decoder:
    """Compiled decoder for the mapped messages of one signal map.

    `decode(msg)` returns a fresh dict {canonical: value} for a good frame, else None with
    `counts[reason]` incremented. Enum signals decode to the canonical names (e.g. "ON").
    `counting = False` decodes without counting (used while skipping already-processed
    frames after a restart)."""

    def __init__(self, smap: SignalMap, *, fast: bool = True):
        self.smap = smap
        self.counts = {r: 0 for r in REASONS}
        self.counting = True
        self._std: dict[int, _Compiled] = {}
        self._ext: dict[int, _Compiled] = {}
        for frame_id, bindings in smap.by_frame_id.items():
            msg = smap.db.get_message_by_frame_id(frame_id)
            sigs = [msg.get_signal_by_name(b.signal) for b in bindings]
            fn = self._codegen(msg, bindings, sigs) if fast and _fast_ok(msg, sigs) else self._generic(msg, bindings, sigs)
            table = self._ext if msg.is_extended_frame else self._std
            table[frame_id] = _Compiled(fn, msg.length, msg.name)

    @property
    def frame_ids(self) -> list[int]:
        return sorted(set(self._std) | set(self._ext))

    # ---- compilation -------------------------------------------------------------------
    @staticmethod
    def _choice_table(sig, binding) -> dict[int, str]:
        out = {}
        for raw, name in sig.choices.items():
            name = str(name)
            if binding.choices is None:
                out[int(raw)] = name
            elif name in binding.choices:
                out[int(raw)] = binding.choices[name]
        return out

    def _codegen(self, msg, bindings, sigs):
        env: dict = {"_OOR": _OOR, "_UNDEC": _UNDEC, "_from": int.from_bytes}
        lines = ["def _f(data):", "    x = _from(data, 'little')"]
        items = []
        for i, (b, s) in enumerate(zip(bindings, sigs)):
            mask = (1 << s.length) - 1
            lines.append(f"    r{i} = (x >> {s.start}) & {mask}" if s.start else f"    r{i} = x & {mask}")
            if s.is_signed:
                lines.append(f"    if r{i} & {1 << (s.length - 1)}: r{i} -= {1 << s.length}")
            lo, hi = _raw_bounds(s)
            full_lo = -(1 << (s.length - 1)) if s.is_signed else 0
            if lo > full_lo and hi < full_lo + mask:
                lines.append(f"    if r{i} < {lo} or r{i} > {hi}: return _OOR")
            elif lo > full_lo:
                lines.append(f"    if r{i} < {lo}: return _OOR")
            elif hi < full_lo + mask:
                lines.append(f"    if r{i} > {hi}: return _OOR")
            if s.choices:
                env[f"C{i}"] = self._choice_table(s, b)
                lines.append(f"    v{i} = C{i}.get(r{i})")
                lines.append(f"    if v{i} is None: return _UNDEC")
            else:
                # Same float operations as cantools raw_to_scaled then the map's factor/offset,
                # so values are bit-identical to cantools' decode.
                scale, offset = s.scale, s.offset
                if scale == 1 and offset == 0:
                    expr = f"r{i}"
                else:
                    expr = f"r{i} * {scale!r} + {offset!r}"
                lines.append(f"    v{i} = ({expr}) * {b.factor!r} + {b.offset!r}")
            items.append(f"{b.canonical!r}: v{i}")
        lines.append("    return {" + ", ".join(items) + "}")
        code = "\n".join(lines)
        exec(compile(code, f"<decode {msg.name}>", "exec"), env)
        return env["_f"]

    def _generic(self, msg, bindings, sigs):
        plan = []
        for b, s in zip(bindings, sigs):
            lo, hi = _raw_bounds(s)
            plan.append((b, s, lo, hi, self._choice_table(s, b) if s.choices else None))

        def _f(data):
            try:
                raw = msg.decode(bytes(data), decode_choices=False, scaling=False)
            except Exception:
                return _UNDEC
            out = {}
            for b, s, lo, hi, ch in plan:
                r = raw.get(s.name)
                if r is None:
                    continue                       # not present in this multiplexer branch
                if not s.is_float and not lo <= r <= hi:
                    return _OOR
                if ch is not None:
                    v = ch.get(int(r))
                    if v is None:
                        return _UNDEC
                    out[b.canonical] = v
                else:
                    out[b.canonical] = s.conversion.raw_to_scaled(r, False) * b.factor + b.offset
            return out
        return _f

    # ---- decoding ----------------------------------------------------------------------
    def decode(self, msg) -> dict | None:
        c = (self._ext if msg.is_extended_id else self._std).get(msg.arbitration_id)
        counts = self.counts
        if c is None:
            if self.counting:
                counts["unknown_id"] += 1
            return None
        if msg.is_remote_frame or msg.is_error_frame:
            return self._drop("undecodable", c)
        data = msg.data
        if len(data) != c.length:
            return self._drop("bad_dlc", c)
        v = c.fn(data)
        if v.__class__ is dict:
            return v
        return self._drop("out_of_range" if v == _OOR else "undecodable", c)

    def _drop(self, reason: str, c: _Compiled) -> None:
        if self.counting:
            if self.counts[reason] == 0:
                log.warning("dropping frame %s: %s (logged once per kind; see counters)", c.name, reason)
            self.counts[reason] += 1
        return None
