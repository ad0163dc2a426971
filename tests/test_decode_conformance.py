"""Conformance: the agent's decode equals cantools' on random payloads, for generated DBCs covering
both byte orders, signed, 1-64 bit lengths, float, multiplexed and enum signals, CAN FD payloads
and extended IDs, and for the mapped signals of the shipped vehicle profiles. Integers must be
exact, floats equal to the bit, and every dropped value must carry the documented reason
(docs/rollup.md): out_of_range, undecodable, sentinel."""

from __future__ import annotations

import math
import random
import struct
from collections import OrderedDict
from fractions import Fraction

import can
import cantools
from cantools.database.can import Message, Signal
from cantools.database.conversion import BaseConversion
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import signals as S
from agent.decode import Decoder
from agent.signal_map import ENUM_SIGNALS, signal_map_from_dict
from agent.vehicles import PROFILES, profile_paths

NUMERIC = [c for c in S.ALL if c not in ENUM_SIGNALS]
FD_LENGTHS = (12, 16, 20, 24, 32, 48, 64)


def _exact(x):
    return Fraction(x) if isinstance(x, int) else Fraction(repr(float(x)))


@st.composite
def signal_specs(draw, budget: int):
    """A signal's (length, signed, float, scale, offset, min/max, choices) fitting in budget bits."""
    is_float = budget >= 32 and draw(st.integers(0, 5)) == 0
    if is_float:
        length = 64 if budget >= 64 and draw(st.booleans()) else 32
        signed = True
    else:
        length = draw(st.integers(1, min(64, budget)))
        signed = length > 1 and draw(st.booleans())
    scale = draw(st.sampled_from([1, 1, 2, 0.1, 0.01, 0.001, 0.25, -0.5, 1e-6])) if not is_float else 1
    offset = draw(st.sampled_from([0, 0, -40, 100, 0.5, -511])) if not is_float else 0
    bounds = draw(st.sampled_from(["none", "wide", "tight"]))
    choices = None
    if not is_float and draw(st.integers(0, 3)) == 0:
        top = (1 << (length - 1)) - 1 if signed else (1 << length) - 1
        n = min(draw(st.integers(1, 3)), (1 << length) - 1)     # a fully named signal is a map error
        choices = OrderedDict((draw(st.integers(0, max(0, top))), name) for name in ["SNA", "Invalid", "Init"][:n])
    return dict(length=length, signed=signed, is_float=is_float, scale=scale, offset=offset, bounds=bounds,
                choices=choices, tight=draw(st.floats(0.05, 0.95)))


def _mk_signal(name, start, spec, byte_order, **kw):
    lo = -(1 << (spec["length"] - 1)) if spec["signed"] else 0
    hi = (1 << (spec["length"] - 1)) - 1 if spec["signed"] else (1 << spec["length"]) - 1
    mn = mx = None
    if spec["is_float"]:
        if spec["bounds"] != "none":
            mn, mx = (-1000.0, 1000.0) if spec["bounds"] == "tight" else (-1e30, 1e30)
    elif spec["bounds"] != "none":
        span = hi - lo
        cut = int(span * spec["tight"] / 2) if spec["bounds"] == "tight" else 0
        a = spec["scale"] * (lo + cut) + spec["offset"]
        b = spec["scale"] * (hi - cut) + spec["offset"]
        mn, mx = min(a, b), max(a, b)
        if isinstance(spec["scale"], float) or isinstance(spec["offset"], float):
            mn, mx = float(f"{mn:.6g}"), float(f"{mx:.6g}")
    conv = BaseConversion.factory(spec["scale"], spec["offset"], spec["choices"], spec["is_float"])
    return Signal(name, start, spec["length"], byte_order=byte_order, is_signed=spec["signed"], conversion=conv,
                  minimum=mn, maximum=mx, **kw)


def _be_start(msb_pos: int, nbytes: int) -> int:
    return (nbytes - 1 - msb_pos // 8) * 8 + msb_pos % 8


@st.composite
def databases(draw):
    """1-4 messages, each all little- or all big-endian, some CAN FD, some extended (IDs <= 0x7FF
    too), one possibly multiplexed; canonical names bound in order over their signals."""
    canon = list(NUMERIC)
    draw(st.randoms()).shuffle(canon)
    messages, bindings = [], []
    used_ids = set()
    for mi in range(draw(st.integers(1, 4))):
        fd = draw(st.booleans())
        length = draw(st.sampled_from(FD_LENGTHS)) if fd else draw(st.integers(1, 8))
        ext = draw(st.booleans())
        fid = draw(st.integers(1, 0x1FFFFFFF if ext and draw(st.booleans()) else 0x7FF))
        if (fid, ext) in used_ids:
            continue
        used_ids.add((fid, ext))
        order = draw(st.sampled_from(["little_endian", "big_endian"]))
        mux = not fd and length >= 3 and draw(st.integers(0, 3)) == 0
        sigs, pos = [], 0
        if mux:
            sigs.append(Signal("Mux", 0 if order == "little_endian" else 7, 8, byte_order=order, is_multiplexer=True))
            pos = 8
        k = 0
        while pos < 8 * length and k < 5 and canon:
            spec = draw(signal_specs(8 * length - pos))
            name = f"M{mi}S{k}"
            kw = {}
            if mux and k % 2 == 1:
                kw = {"multiplexer_ids": [k % 3], "multiplexer_signal": "Mux"}
            if order == "little_endian":
                sig = _mk_signal(name, pos, spec, order, **kw)
            else:
                sig = _mk_signal(name, _be_start(8 * length - 1 - pos, length), spec, order, **kw)
            sigs.append(sig)
            bindings.append((canon.pop(), f"Msg{mi}", name))
            pos += spec["length"] + draw(st.integers(0, 3))
            k += 1
        messages.append(Message(fid, f"Msg{mi}", length, sigs, is_extended_frame=ext, is_fd=fd, strict=True))
    if draw(st.booleans()) and messages:
        # the enum signal: ignition states plus a sentinel name, in a message of its own
        fid = 0x7F0
        if (fid, False) not in used_ids:
            conv = BaseConversion.factory(1, 0, OrderedDict([(0, "OFF"), (1, "ACC"), (2, "ON"), (3, "START"),
                                                             (7, "SNA")]), False)
            messages.append(Message(fid, "Ign", 1, [Signal("IgnState", 0, 3, conversion=conv, minimum=0, maximum=7)]))
            bindings.append((S.SYSTEM_STATE, "Ign", "IgnState"))
    return messages, bindings


def _expected(msg, bindings, data: bytes):
    """The documented result for one payload, from cantools' own decode: (view or None, reason)."""
    try:
        raw = msg.decode(data, decode_choices=False, scaling=False)
    except Exception:
        return None, "undecodable"
    out, sentinel = {}, False
    for canon, sig in bindings:
        if sig.name not in raw:
            continue
        r = raw[sig.name]
        names = {int(k): str(v) for k, v in (sig.choices or {}).items()}
        if sig.is_float and not math.isfinite(r):
            return None, "out_of_range"
        if canon in ENUM_SIGNALS:
            if r in names and names[r] not in ENUM_SIGNALS[canon]:
                sentinel = True
                continue
        elif r in names:
            sentinel = True
            continue
        v = sig.conversion.raw_to_scaled(r, False)
        if sig.is_float:
            if (sig.minimum is not None and v < sig.minimum) or (sig.maximum is not None and v > sig.maximum) \
                    or not math.isfinite(v):
                return None, "out_of_range"
        else:
            exact = _exact(sig.scale) * r + _exact(sig.offset)
            if (sig.minimum is not None and exact < _exact(sig.minimum)) or \
                    (sig.maximum is not None and exact > _exact(sig.maximum)):
                return None, "out_of_range"
        if canon in ENUM_SIGNALS:
            if r not in names:
                return None, "undecodable"
            out[canon] = names[r]
        else:
            out[canon] = v
    if sentinel:
        return (out or None), "sentinel"
    return out, None


def _same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return False


def _check(db, smap_bindings, frames_per_msg, rnd, fast):
    dec = Decoder(smap_bindings, fast=fast)
    by_msg = {}
    for b in smap_bindings.bindings.values():
        m = db.get_message_by_name(b.message)
        by_msg.setdefault(m.name, (m, []))[1].append((b.canonical, m.get_signal_by_name(b.signal)))
    for m, binds in by_msg.values():
        for _ in range(frames_per_msg):
            data = bytes(rnd.getrandbits(8) for _ in range(m.length))
            if m.is_multiplexed() and rnd.random() < 0.7:
                data = bytes([rnd.randint(0, 2)]) + data[1:]        # the selector byte: a defined branch
            want, reason = _expected(m, binds, data)
            before = dict(dec.counts)
            got = dec.decode(can.Message(arbitration_id=m.frame_id, is_extended_id=m.is_extended_frame, data=data,
                                         is_fd=m.is_fd))
            moved = {k for k in dec.counts if dec.counts[k] != before[k]}
            assert moved == ({reason} if reason else set()), (m.name, data.hex(), reason, moved)
            if want is None:
                assert got is None, (m.name, data.hex(), got)
            else:
                assert got is not None and set(got) == set(want), (m.name, data.hex(), got, want)
                for k in want:
                    assert _same(got[k], want[k]), (m.name, k, data.hex(), got[k], want[k])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(databases(), st.integers(0, 2**32 - 1))
def test_generated_dbcs_decode_like_cantools(tmp_path_factory, dbspec, seed):
    messages, bindings = dbspec
    if not bindings:
        return
    text = cantools.database.can.Database(messages=messages).as_dbc_string()
    path = tmp_path_factory.mktemp("dbc") / "gen.dbc"
    path.write_text(text)
    db = cantools.database.load_file(str(path), strict=True)     # what the agent loads: the DBC text
    raw_map = {"signals": {c: {"message": m, "signal": s} for c, m, s in bindings}}
    sm = signal_map_from_dict(db, raw_map, "gen.toml", str(path))
    rnd = random.Random(seed)
    for fast in (True, False):
        _check(db, sm, 40, rnd, fast)


def test_generated_dbcs_exercise_the_fast_path_for_both_byte_orders(tmp_path):
    """Big-endian integers compile too (they used to fall back to cantools)."""
    conv = BaseConversion.factory(0.001, 0)
    m = Message(0x1ABCDE, "Be", 64, [Signal("V", 7, 24, byte_order="big_endian", conversion=conv),
                                     Signal("I", 500, 12, byte_order="little_endian", is_signed=True)],
                is_extended_frame=True, is_fd=True)
    path = tmp_path / "be.dbc"
    path.write_text(cantools.database.can.Database(messages=[m]).as_dbc_string())
    db = cantools.database.load_file(str(path))
    sm = signal_map_from_dict(db, {"signals": {S.VOLTAGE: {"message": "Be", "signal": "V"},
                                               S.CURRENT: {"message": "Be", "signal": "I"}}})
    assert Decoder(sm).compiled == {"Be": True}
    _check(db, sm, 500, random.Random(1), True)


def test_shipped_profiles_decode_like_cantools():
    for name in sorted(PROFILES):
        dbc, smap_path = profile_paths(name)
        from agent.signal_map import load_signal_map
        full = load_signal_map(dbc, smap_path)
        plain = {c: {"message": b.message, "signal": b.signal} for c, b in full.bindings.items() if b.transform is None}
        # every input signal of the transformed entries, checked as a plain numeric signal
        spare = [c for c in NUMERIC if c not in full.bindings]
        for c, b in full.bindings.items():
            if b.transform is not None:
                for sig in {b.signal, *b.transform.aux_signals()}:
                    plain[spare.pop()] = {"message": b.message, "signal": sig}
        sm = signal_map_from_dict(full.db, {"signals": plain}, name, str(dbc))
        _check(full.db, sm, 3000, random.Random(name), True)
        _check(full.db, sm, 300, random.Random(name), False)
        _check_transforms(full, random.Random(name))


def _check_transforms(smap, rnd):
    """The transformed entries (terminal bits, validity) against their rule applied to cantools' decode."""
    dec = Decoder(smap)
    for b in smap.bindings.values():
        t = b.transform
        if t is None:
            continue
        m = smap.db.get_message_by_name(b.message)
        for _ in range(2000):
            data = bytes(rnd.getrandbits(8) for _ in range(m.length))
            got = dec.decode(can.Message(arbitration_id=m.frame_id, is_extended_id=m.is_extended_frame, data=data))
            ref = m.decode(data, decode_choices=False)
            if t.terminals:
                want = next((st for st, sig, inv in t.terminals if bool(ref[sig]) != inv), "OFF")
                assert got is not None and got[b.canonical] == want, (b.message, data.hex())
            if t.valid:
                sig, values = t.valid
                if got is not None:
                    assert (b.canonical in got) == (ref[sig] in values), (b.message, data.hex())
