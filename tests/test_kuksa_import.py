"""`trey-agent map import-kuksa FILE.json --dbc DBC`: a Kuksa dbc2val mapping becomes a signal map the
agent loads and decodes with (linear math -> factor/offset, mapping -> mapping/choices)."""

from __future__ import annotations

import json
import subprocess
import sys

import can
import pytest

from agent import signals as S
from agent.decode import Decoder
from agent.kuksa_import import linear
from agent.signal_map import load_signal_map
from agent.vehicles import profile_paths
from tests.bus_support import ROOT
from tests.test_replay import ENV
from can_sim.production import encode

KUKSA = {"Vehicle": {"type": "branch", "children": {
    "Speed": {"type": "sensor", "datatype": "float", "dbc2vss": {"signal": "ESP_v_Signal", "interval_ms": 100}},
    "LowVoltageBattery": {"type": "branch", "children": {
        "CurrentVoltage": {"type": "sensor", "dbc2vss": {"signal": "DC_HYB_uAktLV"}},
        "CurrentCurrent": {"type": "sensor", "dbc": {"signal": "DC_HYB_iAktLV", "transform": {"math": "-(x + 2) * 2"}}},
        "Temperature": {"type": "sensor", "dbc2vss": {"signal": "DC_HYB_Auslastungsgrad",
                                                      "transform": {"math": "floor(x)"}}}}},
    "LowVoltageSystemState": {"type": "sensor", "dbc2vss": {"signal": "ZAS_Kl_15", "transform": {
        "mapping": [{"from": 0, "to": "LOCK"}, {"from": 1, "to": "ON"}]}}},
    "Cabin": {"type": "branch", "children": {"Door": {"dbc2vss": {"signal": "DoorOpen"}}}},
}}}


def _run(*args):
    return subprocess.run([sys.executable, "-m", "agent", "map", "import-kuksa", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=60)


def test_a_kuksa_mapping_becomes_a_working_signal_map(tmp_path):
    src = tmp_path / "vss_dbc.json"
    src.write_text(json.dumps(KUKSA))
    dbc, _ = profile_paths("vw_mqb")
    out = tmp_path / "imported.toml"
    r = _run(str(src), "--dbc", str(dbc), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "Vehicle.LowVoltageBattery.Temperature: not a linear expression in x: 'floor(x)'; left out" in r.stderr
    assert "Vehicle.Cabin.Door: not a canonical signal of trey-edge, left out" in r.stderr
    sm = load_signal_map(dbc, out)
    assert set(sm.bindings) == {S.SPEED, S.VOLTAGE, S.CURRENT, S.SYSTEM_STATE}
    dec = Decoder(sm)
    assert dec.compiled["DC_Hybrid_01"] and dec.compiled["Klemmen_Status_01"]      # still the fast path
    m = encode(sm.db, "DC_Hybrid_01", {"DC_HYB_uAktLV": 12.6, "DC_HYB_iAktLV": 10})
    v = dec.decode(can.Message(arbitration_id=m.arbitration_id, is_extended_id=False, data=m.data))
    assert v[S.CURRENT] == -(10 + 2) * 2 and v[S.VOLTAGE] == pytest.approx(12.6)
    for bit, state in ((0, "OFF"), (1, "ON")):
        m = encode(sm.db, "Klemmen_Status_01", {"ZAS_Kl_15": bit})
        assert dec.decode(can.Message(arbitration_id=m.arbitration_id, is_extended_id=False,
                                      data=m.data)) == {S.SYSTEM_STATE: state}


@pytest.mark.parametrize("doc, message", [
    ("{not json", "Expecting property name"),
    (json.dumps({"Vehicle": {"children": {"Cabin": {"dbc2vss": {"signal": "X"}}}}}), "no entry of the Kuksa mapping"),
])
def test_unusable_kuksa_files_exit_2(tmp_path, doc, message):
    src = tmp_path / "bad.json"
    src.write_text(doc)
    r = _run(str(src))
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_only_linear_math_is_accepted():
    assert linear("x*0.1 + 3") == (pytest.approx(0.1), 3.0)
    assert linear("(x - 40) / 2") == (0.5, -20.0)
    for bad in ("x*x", "floor(x)", "3", "x if x > 0 else 0", "__import__('os')"):
        with pytest.raises((ValueError, SyntaxError)):
            linear(bad)
