"""OBD-II end to end: the simulator's ECU (can_sim.obd_ecu) answers over ISO-TP on a python-can virtual
bus, the agent's poller (agent.obd) asks for PIDs 0x42/0x0D/0x0C/0xA6 only while the engine runs and
never while the bus sleeps; the answers become daily-row inputs (trips, voltage, estimated cycles)."""

from __future__ import annotations

import logging
import threading
import uuid

import can
import pytest

from agent.config import config_from_dict
from agent.obd import decode_pid, encode_pid
from agent.reader import Pipeline
from can_sim.obd_ecu import ObdEcu
from tests.conftest import wait_until


def _empty_map(tmp_path):
    p = tmp_path / "obd_only.toml"
    p.write_text("# an OBD-only car: no DBC signal mapped\n[signals]\n")
    return p


@pytest.mark.parametrize("pid, value", [(0x0C, 2345.25), (0x0D, 87.0), (0x42, 14.213), (0xA6, 123456.7)])
def test_pid_codecs_round_trip(pid, value):
    assert decode_pid(pid, encode_pid(pid, value)) == pytest.approx(value)


def test_sim_ecu_and_agent_over_a_virtual_bus(tmp_path, caplog):
    ch = f"obd-{uuid.uuid4().hex}"
    cfg = config_from_dict({
        "vehicle": {"id": "OBD1"}, "state": {"dir": str(tmp_path / "state")},
        "can": {"interface": "virtual", "channel": ch, "signal_map": str(_empty_map(tmp_path))},
        "battery": {"id": "B-OBD", "rated_cycles": 300, "nominal_capacity_ah": 60},
        "obd": {"enabled": True, "interval_s": 0.05, "probe_s": 0.2, "awake_s": 0.3, "timeout_s": 0.2,
                "est_running_a": 10.0, "est_start_ah": 0.1}})
    with caplog.at_level(logging.INFO, "agent.reader"):
        p = Pipeline.from_config(cfg, None)
    lines = [r.getMessage() for r in caplog.records]
    assert "no Vehicle.Speed in the signal map: from OBD-II PID 0x0D" in lines
    assert "no Vehicle.LowVoltageBattery.CurrentCurrent in the signal map: no current: cycles are not measured " \
           "(from the throughput counter only, if mapped)" in lines
    ecu = ObdEcu(can.Bus(interface="virtual", channel=ch), supported={0x0C, 0x0D, 0x42}).start()  # no odometer
    stop = threading.Event()

    def agent_loop():
        while not stop.is_set():
            p.poll(0.01)
    th = threading.Thread(target=agent_loop, daemon=True)
    th.start()
    try:
        # asleep: the agent never talks on a quiet bus
        wait_until(lambda: p.obd.stats()["requests"] == 0 and p.obd.last_rx is None, 1.0)
        import time
        time.sleep(0.5)
        assert ecu.requested() == [] and p.obd.requests == 0
        # awake, engine off: support bitmaps, then RPM probes only
        ecu.awake = True
        wait_until(lambda: ecu.requested().count(0x0C) >= 2, 10, what="RPM probes")
        assert set(ecu.requested()) <= {0x00, 0x20, 0x40, 0x0C}
        assert sorted(p.obd.supported & {0x0C, 0x0D, 0x42, 0xA6}) == [0x0C, 0x0D, 0x42]
        # engine running: every supported PID, decoded; 0xA6 is never asked (not supported)
        ecu.rpm, ecu.speed, ecu.voltage = 812.5, 42.0, 14.123
        ecu.engine_running = True
        wait_until(lambda: p.obd.running and ecu.requested().count(0x42) >= 3 and ecu.requested().count(0x0D) >= 3,
                   10, what="a running engine's PIDs")
        assert p.rollup.state == "ON"
        assert 0xA6 not in ecu.requested()
        ecu.engine_running = False                     # RPM 0: polling stops
        wait_until(lambda: not p.obd.running, 10, what="engine stop seen")
        t_stop = time.monotonic()
        wait_until(lambda: ecu.requested(t_stop).count(0x0C) >= 3, 10, what="RPM probes after the stop")
        after = ecu.requested(t_stop + 0.05)
        assert after and set(after) == {0x0C}, after
        assert p.rollup.state == "OFF"
        # asleep again: silence from the agent too
        ecu.awake = False
        time.sleep(0.4)
        t_sleep = time.monotonic()
        time.sleep(0.6)
        assert ecu.requested(t_sleep) == []
    finally:
        stop.set()
        th.join(5)
        ecu.stop()
        p.close()
    acc = next(iter(p.rollup.open.values()))
    assert acc.bid == "B-OBD" and acc.trips == 1 and acc.trip_s > 0
    # no current: the documented estimate, 0.1 Ah per start + 10 A x engine time
    assert acc.ah == pytest.approx(0.1 + 10.0 * acc.trip_s / 3600.0)
    assert p.rollup.cycles_source == "estimated:engine_time"
    assert p.obd.stats()["timeouts"] <= 2
    assert p.counters()["unknown_id"] > 0        # the heartbeat frames: another ECU's traffic
