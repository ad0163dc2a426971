"""Decoder: compiled extractors agree with cantools, drop reasons are counted per kind."""

from __future__ import annotations

import random

import can
import pytest

from agent import signals as S
from agent.decode import Decoder
from agent.signal_map import load_signal_map


@pytest.fixture(scope="module")
def smap():
    return load_signal_map()


def _msg(fid, data, **kw):
    return can.Message(arbitration_id=fid, is_extended_id=False, data=data, **kw)


def test_compiled_decode_equals_cantools(smap):
    fast, slow = Decoder(smap), Decoder(smap, fast=False)
    rng = random.Random(3)
    for fid, bindings in smap.by_frame_id.items():
        msg = smap.db.get_message_by_frame_id(fid)
        for _ in range(300):
            raw = {}
            for sig in msg.signals:
                lo = 0 if not sig.is_signed else -(1 << (sig.length - 1))
                lo = max(lo, round((sig.minimum - sig.offset) / sig.scale)) if sig.minimum is not None else lo
                hi = round((sig.maximum - sig.offset) / sig.scale) if sig.maximum is not None else (1 << sig.length) - 1
                hi = min(hi, (1 << (sig.length - (1 if sig.is_signed else 0))) - 1)
                raw[sig.name] = rng.randint(lo, hi)
            data = msg.encode(raw, scaling=False, strict=False)
            ref = msg.decode(data, decode_choices=True)
            got = fast.decode(_msg(fid, data))
            assert got == slow.decode(_msg(fid, data))
            for b in bindings:
                want = ref[b.signal]
                if hasattr(want, "name"):      # cantools NamedSignalValue
                    assert got[b.canonical] == str(want.name)
                else:
                    assert got[b.canonical] == want * b.factor + b.offset      # bit-identical
    assert all(v == 0 for v in fast.counts.values())


def test_signed_current_and_enum(smap):
    dec = Decoder(smap)
    ibs = smap.message(S.CURRENT)
    data = ibs.encode({"IBS_Voltage": 12.345, "IBS_Current": -250.5, "IBS_Temperature": -12, "IBS_SoC": 77.5,
                       "IBS_Status_Counter": 3})
    v = dec.decode(_msg(ibs.frame_id, data))
    assert v[S.CURRENT] == pytest.approx(-250.5) and v[S.VOLTAGE] == pytest.approx(12.345)
    assert v[S.TEMPERATURE] == -12 and v[S.SOC] == 77.5
    pm = smap.message(S.SYSTEM_STATE)
    for i, name in enumerate(("OFF", "ACC", "ON", "START")):
        assert dec.decode(_msg(pm.frame_id, pm.encode({"LowVoltageSystemState": i, "PowerMode_Counter": 0})))[
            S.SYSTEM_STATE] == name


def test_drop_reasons_counted(smap, caplog):
    dec = Decoder(smap)
    ibs = smap.message(S.VOLTAGE)
    good = bytes(ibs.encode({"IBS_Voltage": 12.0, "IBS_Current": 1.0, "IBS_Temperature": 20, "IBS_SoC": 50,
                             "IBS_Status_Counter": 0}))
    assert dec.decode(_msg(0x7EF, b"\x00")) is None                         # unknown id
    assert dec.decode(_msg(ibs.frame_id, good[:5])) is None                 # short
    assert dec.decode(_msg(ibs.frame_id, good + b"\x00")) is None           # long
    bad_v = b"\xff\xff" + good[2:]                                          # 65.535 V > 20 V
    assert dec.decode(_msg(ibs.frame_id, bad_v)) is None
    pm = smap.message(S.SYSTEM_STATE)
    assert dec.decode(_msg(pm.frame_id, b"\x05\x00")) is None              # enum raw 5 > DBC max 3
    assert dec.decode(can.Message(arbitration_id=ibs.frame_id, is_extended_id=False, is_remote_frame=True,
                                  dlc=8)) is None
    # an extended frame with a mapped standard id is another frame
    assert dec.decode(can.Message(arbitration_id=ibs.frame_id, is_extended_id=True, data=good)) is None
    assert {k: v for k, v in dec.counts.items() if v} == {"unknown_id": 2, "bad_dlc": 2, "out_of_range": 2, "undecodable": 1}
    # logged once per kind, not once per frame
    assert dec.decode(_msg(ibs.frame_id, good[:3])) is None
    assert sum("bad_dlc" in r.message for r in caplog.records) == 1
    assert dec.decode(_msg(ibs.frame_id, good))[S.VOLTAGE] == 12.0


def test_big_endian_dbc_uses_generic_path(tmp_path):
    """Another vehicle: Motorola byte order and an offset/factor in the map still decode right."""
    dbc = tmp_path / "other.dbc"
    dbc.write_text('VERSION ""\n\nNS_ :\n\nBS_:\n\nBU_: A\n\n'
                   'BO_ 300 Batt: 4 A\n SG_ Volt : 7|16@0+ (0.01,0) [0|30] "V" A\n'
                   ' SG_ TempF : 23|8@0+ (1,-40) [-40|200] "degF" A\n\n'
                   'BO_ 301 Clock: 4 A\n SG_ T : 0|32@1+ (1,0) [0|4294967295] "s" A\n')
    mp = tmp_path / "other.toml"
    mp.write_text('[signals."Vehicle.LowVoltageBattery.CurrentVoltage"]\nmessage = "Batt"\nsignal = "Volt"\n'
                  '[signals."Vehicle.LowVoltageBattery.Temperature"]\nmessage = "Batt"\nsignal = "TempF"\n'
                  'factor = 0.5555555555555556\noffset = -17.77777777777778\n'
                  '[signals."Vehicle.CurrentTime"]\nmessage = "Clock"\nsignal = "T"\n')
    sm = load_signal_map(dbc, mp)
    dec = Decoder(sm)
    msg = sm.db.get_message_by_name("Batt")
    v = dec.decode(_msg(300, msg.encode({"Volt": 12.34, "TempF": 68})))
    assert v[S.VOLTAGE] == pytest.approx(12.34) and v[S.TEMPERATURE] == pytest.approx(20.0)
    assert dec.decode(_msg(300, msg.encode({"Volt": 40.0, "TempF": 68}, strict=False))) is None
    assert dec.counts["out_of_range"] == 1
    assert dec.decode(_msg(301, (1700000000).to_bytes(4, "little")))[S.CURRENT_TIME] == 1700000000


def test_random_garbage_never_crashes_and_every_frame_is_accounted(smap):
    from agent.reader import Pipeline
    from can_sim import Simulator

    rng = random.Random(17)
    ids = list(smap.frame_ids) + [0x001, 0x123, 0x7FF, 0x1ABCDE]
    good = [m for _, m in Simulator("healthy", seed=2, days=3).frames()]
    frames = []
    for m in good:
        frames.append(m)
        if rng.random() < 0.5:
            fid = rng.choice(ids)
            n = rng.randint(0, 8)
            frames.append(can.Message(arbitration_id=fid, is_extended_id=fid > 0x7FF or rng.random() < 0.05,
                                      is_remote_frame=rng.random() < 0.05, dlc=n,
                                      data=bytes(rng.getrandbits(8) for _ in range(n))))
    for m in frames:
        if m.is_remote_frame:
            m.data = bytearray()
    p = Pipeline(smap, None)
    p.feed_many(frames)
    c = p.counters()
    ref = Decoder(smap, fast=False)
    decoded = sum(ref.decode(m) is not None for m in frames)
    assert c["frames"] == len(frames)
    assert decoded + sum(c[k] for k in ("unknown_id", "bad_dlc", "out_of_range", "undecodable")) == len(frames)
    # random bytes in GW_VehicleTime are decades away from the clock: suspect, never the date
    assert c == {**ref.counts, "no_time": 0, "clock_suspect": c["clock_suspect"], "frames": len(frames),
                 "error_frames": 0}
    assert c["clock_suspect"] > 0
    assert min(c["unknown_id"], c["bad_dlc"], c["out_of_range"]) > 0
