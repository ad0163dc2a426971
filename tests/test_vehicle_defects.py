"""The defects found with production DBCs (issue: real vehicles), each pinned by a test that
failed before the fix: value tables on numeric signals, extended IDs <= 0x7FF, float NaN/inf and
range, 64-bit integers, map mistakes at load time, no identity frame, a sleeping bus, and the
rules document."""

from __future__ import annotations

import logging
import math
import re
import struct
from datetime import datetime, timezone
from pathlib import Path

import can
import pytest

from agent import signals as S
from agent.decode import REASONS, Decoder
from agent.reader import Pipeline
from agent.rollup import BatteryInfo, DailyRollup
from agent.schema import cycles_used
from agent.signal_map import SignalMapError, load_signal_map
from tests.vehicle_support import write_dbc, write_map

ROOT = Path(__file__).resolve().parent.parent
D0 = int(datetime(2024, 3, 1, tzinfo=timezone.utc).timestamp())


def _m(fid, data, ext=False, ts=0.0):
    return can.Message(arbitration_id=fid, is_extended_id=ext, data=data, timestamp=ts)


# ---- 1. value tables on numeric signals ---------------------------------------------------
SENTINEL_DBC = """
BO_ 865 Batt: 8 ECU
 SG_ BattV : 0|11@1+ (0.01,0) [0|20.47] "V" ECU
 SG_ BattI : 16|16@1- (0.1,0) [-3000|3000] "A" ECU
 SG_ PowerMode : 32|3@1+ (1,0) [0|7] "" ECU

VAL_ 865 BattV 2047 "Faulty" 2046 "SNA" ;
VAL_ 865 PowerMode 0 "OFF" 1 "ACC" 2 "ON" 3 "START" 7 "Invalid" ;
"""


def _sentinel_map(tmp_path):
    dbc = write_dbc(tmp_path / "v.dbc", SENTINEL_DBC)
    mp = write_map(tmp_path / "m.toml", {
        S.VOLTAGE: {"message": "Batt", "signal": "BattV"},
        S.CURRENT: {"message": "Batt", "signal": "BattI"},
        S.SYSTEM_STATE: {"message": "Batt", "signal": "PowerMode"}})
    return load_signal_map(dbc, mp)


@pytest.mark.parametrize("fast", [True, False])
def test_value_table_on_a_numeric_signal_names_error_codes_not_values(tmp_path, fast):
    sm = _sentinel_map(tmp_path)
    msg = sm.message(S.VOLTAGE)
    dec = Decoder(sm, fast=fast)
    good = msg.encode({"BattV": 1234, "BattI": -125, "PowerMode": 2}, scaling=False)
    v = dec.decode(_m(865, good))
    assert v == {S.VOLTAGE: pytest.approx(12.34), S.CURRENT: pytest.approx(-12.5), S.SYSTEM_STATE: "ON"}
    assert isinstance(v[S.VOLTAGE], float)
    # the sentinel is dropped and counted under its own reason; the frame's other values are kept
    sna = msg.encode({"BattV": 2047, "BattI": -125, "PowerMode": 3}, scaling=False)
    v = dec.decode(_m(865, sna))
    assert v == {S.CURRENT: pytest.approx(-12.5), S.SYSTEM_STATE: "START"}
    # a named state value that is no canonical state ("Invalid") is a sentinel too
    inv = msg.encode({"BattV": 1200, "BattI": 0, "PowerMode": 7}, scaling=False)
    assert S.SYSTEM_STATE not in dec.decode(_m(865, inv))
    assert dec.counts["sentinel"] == 2 and dec.counts["undecodable"] == 0


def test_a_sentinel_never_reaches_a_daily_row(tmp_path):
    sm = _sentinel_map(tmp_path)
    msg = sm.message(S.VOLTAGE)
    p = Pipeline(sm, None, battery=BatteryInfo("B1", 200, 60.0, 19000))
    rows = []
    for k, (raw_v, mode) in enumerate([(1260, 0), (1250, 1), (2047, 3), (980, 3), (2046, 2), (1400, 2), (1260, 0)]):
        rows += p.feed(_m(865, msg.encode({"BattV": raw_v, "BattI": 0, "PowerMode": mode}, scaling=False),
                          ts=D0 + 8 * 3600 + k))
    rows += p.feed(_m(865, msg.encode({"BattV": 1260, "BattI": 0, "PowerMode": 0}, scaling=False), ts=D0 + 86400))
    (row,) = rows
    assert row["Min_Cranking_Voltage"] == pytest.approx(9.8)
    assert row["Resting_Voltage"] == pytest.approx(12.6) and row["Number_Of_Trips"] == 1
    assert p.counters()["sentinel"] == 2


# ---- 2. extended IDs <= 0x7FF, two messages on one id ---------------------------------------
EXT_DBC = """
BO_ 256 StdMsg: 8 ECU
 SG_ Volt : 0|16@1+ (0.001,0) [0|65.535] "V" ECU

BO_ 2147483904 ExtMsg: 8 ECU
 SG_ Curr : 0|16@1- (0.01,0) [-300|300] "A" ECU

BO_ 2147483905 ExtMsgB: 8 ECU
 SG_ Temp : 0|8@1- (1,0) [-40|100] "degC" ECU
"""


def test_an_extended_id_below_0x800_is_its_own_frame(tmp_path):
    dbc = write_dbc(tmp_path / "e.dbc", EXT_DBC)
    mp = write_map(tmp_path / "m.toml", {S.VOLTAGE: {"message": "StdMsg", "signal": "Volt"},
                                         S.CURRENT: {"message": "ExtMsg", "signal": "Curr"}})
    sm = load_signal_map(dbc, mp)
    assert sm.frame_keys == [(0x100, False), (0x100, True)]
    for fast in (True, False):
        dec = Decoder(sm, fast=fast)
        assert dec.decode(_m(0x100, (12345).to_bytes(2, "little") + bytes(6))) == {S.VOLTAGE: pytest.approx(12.345)}
        assert dec.decode(_m(0x100, (-1500).to_bytes(2, "little", signed=True) + bytes(6), ext=True)) == \
            {S.CURRENT: pytest.approx(-15.0)}
    Pipeline(sm, None)          # used to raise a bare KeyError


def test_two_mapped_messages_on_one_id_is_a_load_error(tmp_path):
    body = EXT_DBC + '\nBO_ 2147483904 ExtTwin: 8 ECU\n SG_ Soc : 0|8@1+ (1,0) [0|100] "%" ECU\n'
    dbc = write_dbc(tmp_path / "e.dbc", body)
    mp = write_map(tmp_path / "m.toml", {S.CURRENT: {"message": "ExtMsg", "signal": "Curr"},
                                         S.SOC: {"message": "ExtTwin", "signal": "Soc"}})
    with pytest.raises(SignalMapError, match=r"ExtMsg and ExtTwin share the extended ID 0x100"):
        load_signal_map(dbc, mp)


# ---- 3. float signals: NaN, inf, range ------------------------------------------------------
FLOAT_DBC = """
BO_ 866 FloatBatt: 8 ECU
 SG_ FV : 0|32@1- (1,0) [0|30] "V" ECU
 SG_ FT : 32|32@1- (1,0) [-40|125] "degC" ECU

VAL_ 866 FV 0 "Init" ;
SIG_VALTYPE_ 866 FV : 1;
SIG_VALTYPE_ 866 FT : 1;
"""


def test_float_signals_are_checked_for_nan_inf_and_range(tmp_path):
    dbc = write_dbc(tmp_path / "f.dbc", FLOAT_DBC)
    mp = write_map(tmp_path / "m.toml", {S.VOLTAGE: {"message": "FloatBatt", "signal": "FV"},
                                         S.TEMPERATURE: {"message": "FloatBatt", "signal": "FT"}})
    sm = load_signal_map(dbc, mp)
    p = Pipeline(sm, None)
    ok = struct.pack("<ff", 12.5, 21.0)
    assert p.decoder.decode(_m(866, ok)) == {S.VOLTAGE: 12.5, S.TEMPERATURE: 21.0}
    for bad in (math.nan, math.inf, -math.inf, 1e12, -3.0):
        assert p.decoder.decode(_m(866, struct.pack("<ff", bad, 21.0))) is None, bad
        p.feed(_m(866, struct.pack("<ff", bad, 21.0), ts=D0))          # never raises
    assert p.decoder.counts["out_of_range"] == 10
    assert p.decoder.decode(_m(866, struct.pack("<ff", 0.0, 21.0))) == {S.TEMPERATURE: 21.0}   # "Init"


# ---- 4. exact integers up to 64 bits --------------------------------------------------------
WIDE_DBC = """
BO_ 300 Ident: 8 ECU
 SG_ Id64 : 0|64@1+ (1,0) [0|18446744073709551615] "" ECU

BO_ 301 Odo: 8 ECU
 SG_ Km : 0|60@1+ (1,0) [0|1152921504606846974] "km" ECU

BO_ 302 TimeMsg: 8 ECU
 SG_ T : 7|56@0+ (1,0) [0|72057594037927935] "s" ECU
"""


@pytest.mark.parametrize("fast", [True, False])
def test_integers_up_to_64_bits_are_exact(tmp_path, fast):
    dbc = write_dbc(tmp_path / "w.dbc", WIDE_DBC)
    mp = write_map(tmp_path / "m.toml", {S.BATTERY_ID: {"message": "Ident", "signal": "Id64"},
                                         S.ODOMETER: {"message": "Odo", "signal": "Km"},
                                         S.CURRENT_TIME: {"message": "TimeMsg", "signal": "T"}})
    sm = load_signal_map(dbc, mp)
    dec = Decoder(sm, fast=fast)
    for n in ((1 << 64) - 1, (1 << 53) + 1, (1 << 63) + 12345):
        v = dec.decode(_m(300, n.to_bytes(8, "little")))[S.BATTERY_ID]
        assert v == n and isinstance(v, int)
    top = 1152921504606846974                                  # the DBC maximum, 2^60 - 2: valid
    assert dec.decode(_m(301, top.to_bytes(8, "little")))[S.ODOMETER] == top
    assert dec.decode(_m(301, (top + 1).to_bytes(8, "little"))) is None
    assert dec.counts["out_of_range"] == 1
    t = (1 << 55) + 3                                           # big-endian 56-bit
    assert dec.decode(_m(302, t.to_bytes(7, "big") + b"\0"))[S.CURRENT_TIME] == t


# ---- 5. map mistakes are load-time errors naming file, entry and item -----------------------
@pytest.mark.parametrize("spec, item", [
    ({"message": "Batt", "signal": "PowerMode", "choices": {"RUNNING": "ON"}}, r'choices\.RUNNING: not a value name'),
    ({"message": "Batt", "signal": "PowerMode", "choices": {"ON": "RUN"}}, r"choices\.ON: 'RUN' is not one of"),
    ({"message": "Batt", "signal": "BattI", "choices": {"X": "ON"}}, r"choices: signal BattI has no value table"),
    ({"message": "Batt"}, r"missing key 'signal'"),
    ({"signal": "BattV"}, r"missing key 'message'"),
    ({"message": "Batt", "signal": "BattI"}, r"signal BattI has no value named OFF/ACC/ON/START"),
])
def test_map_mistakes_fail_at_load_naming_file_entry_and_item(tmp_path, spec, item):
    dbc = write_dbc(tmp_path / "v.dbc", SENTINEL_DBC)
    mp = write_map(tmp_path / "bad_map.toml", {S.SYSTEM_STATE: spec})
    with pytest.raises(SignalMapError) as exc:
        load_signal_map(dbc, mp)
    msg = str(exc.value)
    assert "bad_map.toml" in msg and f'signals."{S.SYSTEM_STATE}"' in msg
    assert re.search(item, msg), msg


def test_choices_on_a_numeric_canonical_signal_is_refused(tmp_path):
    dbc = write_dbc(tmp_path / "v.dbc", SENTINEL_DBC)
    mp = write_map(tmp_path / "m.toml", {S.VOLTAGE: {"message": "Batt", "signal": "BattV",
                                                     "choices": {"SNA": "ON"}}})
    with pytest.raises(SignalMapError, match=r'Vehicle.LowVoltageBattery.CurrentVoltage"\.choices: only'):
        load_signal_map(dbc, mp)


# ---- 6. no identity frame ------------------------------------------------------------------
def test_without_identity_the_battery_config_starts_the_rollup(tmp_path, caplog):
    sm = _sentinel_map(tmp_path)
    msg = sm.message(S.VOLTAGE)
    frames = [_m(865, msg.encode({"BattV": 1250, "BattI": -200, "PowerMode": 0}, scaling=False), ts=D0 + k)
              for k in range(0, 20, 2)]
    frames.append(_m(865, msg.encode({"BattV": 1250, "BattI": 0, "PowerMode": 0}, scaling=False), ts=D0 + 86400))
    with caplog.at_level(logging.INFO, "agent.reader"):
        p = Pipeline(sm, None)
    assert "no Vehicle.LowVoltageBattery.Id in the signal map and no [battery] section: no daily rows" in caplog.text
    assert "no Vehicle.CurrentTime in the signal map: clock = frame timestamps" in caplog.text
    assert sum(len(p.feed(m)) for m in frames) == 0
    p = Pipeline(sm, None, battery=BatteryInfo("AGM-7", 300, 60.0, D0 // 86400 - 30))
    rows = [r for m in frames for r in p.feed(m)]
    assert [(r["Battery_ID"], r["Date"], r["Battery_Age_Days"], r["Battery_Rated_Cycles"]) for r in rows] == \
        [("AGM-7", "2024-03-01", 30, 300)]
    # 20 A for 18 s (9 samples 2 s apart, trapezoid), the last sample integrated up to the 0 A one? no:
    # the day's samples end at D0+18; the next is a day later - the bus slept, nothing more.
    assert rows[0]["Daily_Cycles_Used"] == pytest.approx(cycles_used(20.0 * 18 / 3600, 60.0))


# ---- 7. a sleeping bus is not integrated over -----------------------------------------------
def test_no_trapezoid_across_a_sleeping_bus_and_days_never_woken_get_rows():
    r = DailyRollup(use_counter=False, battery=BatteryInfo("B", 200, 50.0, None))
    evening = D0 + 18 * 3600
    rows = []
    for k in range(61):                                    # 10 min of 10 A, then the bus sleeps
        rows += r.feed({S.CURRENT_TIME: evening + 10 * k, S.CURRENT: -10.0}, rx=evening + 10 * k)
    # parked two full days; wakes on day 3 at 07:00 with 2 A
    for k in range(10):     # rx: the frames' receive times show the sleep, so the clock step is real
        t = D0 + 3 * 86400 + 7 * 3600 + k
        rows += r.feed({S.CURRENT_TIME: t, S.CURRENT: 2.0}, rx=t)
    rows += r.feed({S.CURRENT_TIME: D0 + 4 * 86400}, rx=D0 + 4 * 86400)
    assert [x["Date"] for x in rows] == ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"]
    assert rows[0]["Daily_Cycles_Used"] == pytest.approx(cycles_used(10.0 * 600 / 3600, 50.0))
    assert [x["Daily_Cycles_Used"] for x in rows[1:3]] == [0.0, 0.0]
    assert [x["Number_Of_Trips"] for x in rows[1:3]] == [0, 0]
    assert rows[3]["Daily_Cycles_Used"] == pytest.approx(cycles_used(2.0 * 9 / 3600, 50.0))
    assert rows[3]["Lifetime_Cycles_Used"] == pytest.approx(sum(x["Daily_Cycles_Used"] for x in rows))


def test_a_configured_quiescent_draw_is_integrated_over_the_sleep_day_by_day():
    r = DailyRollup(use_counter=False, battery=BatteryInfo("B", 200, 50.0, None), quiescent_a=0.05)
    rows = []
    for t, view in ((D0 + 12 * 3600, {S.CURRENT: -10.0}), (D0 + 2 * 86400 + 12 * 3600, {S.CURRENT: 0.0}),
                    (D0 + 3 * 86400, {})):
        rows += r.feed({S.CURRENT_TIME: t, **view}, rx=t)
    # hours of quiescent draw per day: 12 (from noon), 24, 12 before the noon sample + 12 after it
    # (one sample, then no battery sample until midnight: asleep again)
    assert [round(x["Daily_Cycles_Used"] * 100 / 0.05, 6) for x in rows] == [12.0, 24.0, 24.0]


# ---- 8. the rules live in the project --------------------------------------------------------
def test_the_rules_document_exists_and_names_every_drop_reason():
    doc = (ROOT / "docs" / "rollup.md").read_text()
    for reason in REASONS:
        assert f"`{reason}`" in doc, reason
    cited = []
    for p in list((ROOT / "agent").rglob("*.py")) + list((ROOT / "can_sim").rglob("*.py")) + [ROOT / "README.md"]:
        text = p.read_text()
        assert "shared_decisions" not in text, p
        if "docs/rollup.md" in text:
            cited.append(p.name)
    assert {"decode.py", "rollup.py", "truth.py", "README.md"} <= set(cited)


def test_a_signal_outside_its_message_or_all_named_is_a_load_error(tmp_path):
    body = """
BO_ 400 Short: 2 ECU
 SG_ Far : 12|8@1+ (1,0) [0|255] "" ECU
 SG_ Bit : 0|1@1+ (1,0) [0|1] "" ECU

VAL_ 400 Bit 0 "Off" 1 "On" ;
"""
    dbc = tmp_path / "s.dbc"
    from tests.vehicle_support import DBC_HEAD
    dbc.write_text(DBC_HEAD + body)                   # cantools' strict load refuses it; non-strict loads
    mp = write_map(tmp_path / "m.toml", {S.SOC: {"message": "Short", "signal": "Far"}})
    with pytest.raises(SignalMapError, match=r"signal Far \(start 12, 8 bits\) does not fit in the 2-byte message"):
        load_signal_map(dbc, mp)
    mp = write_map(tmp_path / "m.toml", {S.SPEED: {"message": "Short", "signal": "Bit"}})
    with pytest.raises(SignalMapError, match=r"every value of Bit has a name in the DBC"):
        load_signal_map(dbc, mp)
    mp = write_map(tmp_path / "m.toml", {S.SPEED: {"message": "Short", "signal": "Bit",
                                                   "mapping": [{"from": 0, "to": 0.0}, {"from": 1, "to": 1.0}]}})
    assert Decoder(load_signal_map(dbc, mp)).decode(_m(400, b"\x01\x00")) == {S.SPEED: 1.0}
