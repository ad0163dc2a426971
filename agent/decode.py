"""CAN frame -> canonical sample values, through the DBC + signal map. Pure, no I/O.

    dec = Decoder(load_signal_map())
    view = dec.decode(msg)        # {canonical name: value} or None (dropped; dec.counts says why)

Every mapped message is compiled once into a small generated Python function that pulls each
mapped signal out of the payload with shift/mask (little- and big-endian, any payload length
up to CAN FD's 64 bytes), checks it against the DBC [min|max] in raw integer space and scales
it exactly as cantools does (integers stay exact integers up to 64 bits), then applies the
map's factor/offset. That is the fast path (~10x cantools' generic decode); messages it cannot
express (float or multiplexed signals) fall back to cantools with the same checks.

Frames are looked up by (arbitration id, extended): a 29-bit frame is never a 11-bit one.
The drop reasons are those of docs/rollup.md ("Drop reasons"); the simulator reports the same.
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction

from agent.signal_map import ENUM_SIGNALS, Binding, SignalMap, signal_fits
from agent.transforms import build_post, hidden

log = logging.getLogger("agent.decode")

REASONS = ("unknown_id", "bad_dlc", "out_of_range", "undecodable", "sentinel", "invalid", "no_time",
           "clock_suspect")

# Sentinels returned by the compiled extractors.
_OOR = 1
_UNDEC = 2
_SENT = 3          # returned as (_SENT, partial dict): some mapped value was an error code
_EMPTY = 4         # a transform left nothing to use (its drop is already counted)


def _exact(x) -> Fraction:
    """A DBC number as written (0.1 is one tenth, not the nearest double)."""
    return Fraction(x) if isinstance(x, int) else Fraction(repr(float(x)))


def _raw_bounds(sig) -> tuple[int, int]:
    """Inclusive raw-integer range allowed by the DBC [min|max] and the field width, computed
    exactly (float arithmetic put 64-bit bounds off by thousands and dropped valid frames)."""
    if sig.is_signed:
        lo, hi = -(1 << (sig.length - 1)), (1 << (sig.length - 1)) - 1
    else:
        lo, hi = 0, (1 << sig.length) - 1
    if sig.is_float:
        return lo, hi
    if not sig.scale:
        return lo, hi                      # a zero scale (a broken DBC): no range to check
    scale, offset = _exact(sig.scale), _exact(sig.offset or 0)
    mn, mx = sig.minimum, sig.maximum
    if scale < 0:
        mn, mx = mx, mn
    if mn is not None:
        lo = max(lo, math.ceil((_exact(mn) - offset) / scale))
    if mx is not None:
        hi = min(hi, math.floor((_exact(mx) - offset) / scale))
    return lo, hi


def _be_lsb(sig, nbytes: int) -> int:
    """Position, in int.from_bytes(data, 'big'), of a big-endian signal's least significant bit."""
    msb = (nbytes - 1 - sig.start // 8) * 8 + sig.start % 8
    return msb - sig.length + 1


def _fast_ok(msg, sigs) -> bool:
    if msg.is_multiplexed():
        return False
    return all(not s.is_float and signal_fits(s, msg.length) for s in sigs)


def _plan(sig, binding):
    """(choice table raw -> canonical, sentinel raw values) of one mapped signal."""
    names = sig.choices or {}
    if binding.canonical.startswith("~"):
        return None, frozenset()           # a transform's input: its physical value, as is
    if binding.canonical in ENUM_SIGNALS:
        allowed = ENUM_SIGNALS[binding.canonical]
        table, sentinels = {}, set()
        for raw, name in names.items():
            name = str(name)
            target = binding.choices.get(name) if binding.choices is not None else (name if name in allowed else None)
            if target is None:
                sentinels.add(int(raw))       # a named value that is no state ("SNA"): not a sample
            else:
                table[int(raw)] = target
        return table, frozenset(sentinels)
    # A numeric signal: every named raw value is an error code.
    return None, frozenset(int(r) for r in names)


def _extraction(mapped: list) -> list:
    """The signals to pull out of a message: each binding's own, or its transform's inputs
    under hidden names (agent.transforms)."""
    out = []
    for b in mapped:
        t = b.transform
        if t is None:
            out.append(b)
            continue
        c = b.canonical

        def aux(kind, sig):
            return Binding(hidden(kind, c, sig), b.message, b.frame_id, sig, extended=b.extended)
        if t.terminals:
            out.extend(aux("t", sig) for _, sig, _ in t.terminals)
        elif t.mapping:
            out.append(aux("m", b.signal))
        else:
            out.append(b)
        if t.valid:
            out.append(aux("v", t.valid[0]))
    return out


def _with_post(fn, post):
    def f(data):
        v = fn(data)
        if v.__class__ is dict:
            post(v)
            return v if v else _EMPTY
        if v.__class__ is tuple:
            post(v[1])
        return v
    return f


class _Compiled:
    __slots__ = ("fn", "length", "name")

    def __init__(self, fn, length, name):
        self.fn, self.length, self.name = fn, length, name


class Decoder:
    """Compiled decoder for the mapped messages of one signal map.

    `decode(msg)` returns a fresh dict {canonical: value} for a good frame, else None with
    `counts[reason]` incremented. The enum signal decodes to its canonical names (e.g. "ON").
    A value the DBC names as an error code is left out of the dict (`sentinel` counted once
    per frame). `counting = False` decodes without counting (used while skipping
    already-processed frames after a restart)."""

    def __init__(self, smap: SignalMap, *, fast: bool = True):
        self.smap = smap
        self.counts = {r: 0 for r in REASONS}
        self.counting = True
        self._std: dict[int, _Compiled] = {}
        self._ext: dict[int, _Compiled] = {}
        self.compiled: dict[str, bool] = {}          # message name -> fast path?
        for (frame_id, ext), mapped in smap.by_key.items():
            msg = smap.message_for(mapped[0])
            bindings = _extraction(mapped)
            sigs = [msg.get_signal_by_name(b.signal) for b in bindings]
            use_fast = fast and _fast_ok(msg, sigs)
            fn = self._codegen(msg, bindings, sigs) if use_fast else self._generic(msg, bindings, sigs)
            post = build_post(mapped, self.drop)
            if post is not None:
                fn = _with_post(fn, post)
            self.compiled[msg.name] = use_fast
            (self._ext if ext else self._std)[frame_id] = _Compiled(fn, msg.length, msg.name)

    @property
    def frame_ids(self) -> list[int]:
        return sorted(set(self._std) | set(self._ext))

    # ---- compilation -------------------------------------------------------------------
    def _codegen(self, msg, bindings, sigs):
        env: dict = {"_OOR": _OOR, "_UNDEC": _UNDEC, "_SENT": _SENT, "_from": int.from_bytes}
        lines = ["def _f(data):"]
        if any(s.byte_order == "little_endian" for s in sigs):
            lines.append("    x = _from(data, 'little')")
        if any(s.byte_order != "little_endian" for s in sigs):
            lines.append("    y = _from(data, 'big')")
        plans = [_plan(s, b) for b, s in zip(bindings, sigs)]
        partial = any(sent for _, sent in plans)
        if partial:
            lines.append("    d = {}")
            lines.append("    s = 0")
        items = []
        for i, (b, s, (table, sent)) in enumerate(zip(bindings, sigs, plans)):
            mask = (1 << s.length) - 1
            if s.byte_order == "little_endian":
                src, shift = "x", s.start
            else:
                src, shift = "y", _be_lsb(s, msg.length)
            lines.append(f"    r{i} = ({src} >> {shift}) & {mask}" if shift else f"    r{i} = {src} & {mask}")
            if s.is_signed:
                lines.append(f"    if r{i} & {1 << (s.length - 1)}: r{i} -= {1 << s.length}")
            body = []
            lo, hi = _raw_bounds(s)
            full_lo = -(1 << (s.length - 1)) if s.is_signed else 0
            full_hi = full_lo + mask
            conds = ([f"r{i} < {lo}"] if lo > full_lo else []) + ([f"r{i} > {hi}"] if hi < full_hi else [])
            if conds:
                body.append(f"if {' or '.join(conds)}: return _OOR")
            if table is not None:
                env[f"C{i}"] = table
                body.append(f"v{i} = C{i}.get(r{i})")
                body.append(f"if v{i} is None: return _UNDEC")
            else:
                body.append(f"v{i} = {self._scale_expr(f'r{i}', s, b)}")
            if partial:
                body.append(f"d[{b.canonical!r}] = v{i}")
            if sent:
                env[f"S{i}"] = sent
                lines.append(f"    if r{i} in S{i}: s = 1")
                lines.append("    else:")
                lines.extend("        " + ln for ln in body)
            else:
                lines.extend("    " + ln for ln in body)
            items.append(f"{b.canonical!r}: v{i}")
        if partial:
            lines.append("    return (_SENT, d) if s else d")
        else:
            lines.append("    return {" + ", ".join(items) + "}")
        code = "\n".join(lines)
        exec(compile(code, f"<decode {msg.name}>", "exec"), env)
        return env["_f"]

    @staticmethod
    def _scale_expr(r: str, s, b) -> str:
        # The same operations as cantools' raw_to_scaled (ints stay ints when scale and offset
        # are ints), then the map's factor/offset: values are bit-identical to cantools' decode.
        scale, offset = s.scale, s.offset
        if scale == 1 and offset == 0 and not isinstance(scale, float) and not isinstance(offset, float):
            expr = r
        else:
            expr = f"({r} * {scale!r} + {offset!r})"
        if not (b.factor == 1 and b.offset == 0):
            expr = f"({expr} * {b.factor!r} + {b.offset!r})"
        return expr

    def _generic(self, msg, bindings, sigs):
        plan = []
        for b, s in zip(bindings, sigs):
            lo, hi = _raw_bounds(s)
            table, sent = _plan(s, b)
            ident = b.factor == 1 and b.offset == 0
            plan.append((b, s, lo, hi, table, sent, ident, s.minimum, s.maximum))

        def _f(data):
            try:
                raw = msg.decode(bytes(data), decode_choices=False, scaling=False)
            except Exception:
                return _UNDEC
            out = {}
            sentinel = False
            for b, s, lo, hi, table, sent, ident, mn, mx in plan:
                r = raw.get(s.name)
                if r is None:
                    continue                       # not present in this multiplexer branch
                if s.is_float and not math.isfinite(r):
                    return _OOR
                if r in sent:
                    sentinel = True
                    continue
                if not s.is_float and not lo <= r <= hi:
                    return _OOR
                if table is not None:
                    v = table.get(int(r))
                    if v is None:
                        return _UNDEC
                    out[b.canonical] = v
                    continue
                v = s.conversion.raw_to_scaled(r, False)
                if s.is_float:
                    if (mn is not None and v < mn) or (mx is not None and v > mx) or not math.isfinite(v):
                        return _OOR
                out[b.canonical] = v if ident else v * b.factor + b.offset
            return (_SENT, out) if sentinel else out
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
        try:
            v = c.fn(data)
        except Exception:                  # never let one frame raise out of the pipeline
            return self._drop("undecodable", c)
        if v.__class__ is dict:
            return v
        if v.__class__ is tuple:           # some value was an error code: keep the rest
            self._drop("sentinel", c)
            return v[1] or None
        if v == _EMPTY:
            return None
        return self._drop("out_of_range" if v == _OOR else "undecodable", c)

    def drop(self, reason: str, name: str) -> None:
        """Count a drop decided after decoding (e.g. a validity signal), once-per-kind logged."""
        if self.counting:
            if self.counts[reason] == 0:
                log.warning("dropping a value of %s: %s (logged once per kind; see counters)", name, reason)
            self.counts[reason] += 1

    def _drop(self, reason: str, c: _Compiled) -> None:
        if self.counting:
            if self.counts[reason] == 0:
                log.warning("dropping frame %s: %s (logged once per kind; see counters)", c.name, reason)
            self.counts[reason] += 1
        return None
