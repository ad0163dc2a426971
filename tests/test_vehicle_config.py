"""`[battery]` and `[can] profile` config: validated at load, errors name the key."""

from __future__ import annotations

import pytest

from agent.config import ConfigError, config_from_dict
from agent.reader import battery_info

BASE = {"vehicle": {"id": "CAR1"}, "state": {"dir": "/tmp/x"}}


def test_battery_section_gives_the_battery_of_a_bus_without_identity():
    cfg = config_from_dict({**BASE, "battery": {"id": "AGM-1", "rated_cycles": 300, "nominal_capacity_ah": 70,
                                                "install_date": "2024-01-31", "quiescent_current_a": 0.02}})
    b = battery_info(cfg.battery)
    assert (b.id, b.rated_cycles, b.nominal_capacity_ah, b.install_days) == ("AGM-1", 300, 70.0, 19753)
    assert cfg.battery.sleep_gap_s == 30.0 and cfg.battery.quiescent_current_a == 0.02
    assert battery_info(config_from_dict(BASE).battery) is None


@pytest.mark.parametrize("battery, key", [
    ({"id": "A", "install_date": "31.01.2024"}, "battery.install_date"),
    ({"id": "A", "nominal_capacity_ah": -1}, "battery.nominal_capacity_ah"),
    ({"id": "A", "nominal_capacity_ah": float("nan")}, "battery.nominal_capacity_ah"),
    ({"id": "A", "sleep_gap_s": 0}, "battery.sleep_gap_s"),
    ({"id": "A", "rated_cycles": "300"}, "battery.rated_cycles"),
    ({"id": "bad id"}, "battery.id"),
    ({"rated_cycles": 300}, "battery.id"),
    ({"id": "A", "capacity": 60}, "battery.capacity"),
])
def test_battery_config_errors_name_the_key(battery, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config_from_dict({**BASE, "battery": battery})


def test_profile_must_be_a_shipped_one():
    assert config_from_dict({**BASE, "can": {"profile": "vw_mqb"}}).can.profile == "vw_mqb"
    with pytest.raises(ConfigError, match=r"can\.profile: 'golf' is not a shipped profile \(bmw_e9x_e8x, vw_mqb\)"):
        config_from_dict({**BASE, "can": {"profile": "golf"}})


@pytest.mark.parametrize("obd, key", [
    ({"request_id": 0x800}, "obd.request_id"),
    ({"interval_s": 0}, "obd.interval_s"),
    ({"est_running_a": -1}, "obd.est_running_a"),
    ({"enabled": "yes"}, "obd.enabled"),
    ({"rate": 1}, "obd.rate"),
])
def test_obd_config_errors_name_the_key(obd, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config_from_dict({**BASE, "obd": obd})


def test_a_new_battery_id_in_the_config_starts_a_new_history(tmp_path):
    """No identity on the bus: changing [battery] id (and restarting) is the battery change."""
    import can

    from agent import signals as S
    from agent.reader import Pipeline
    from agent.rollup import BatteryInfo
    from agent.store import StateStore
    from tests.test_vehicle_defects import D0, _sentinel_map

    sm = _sentinel_map(tmp_path)
    msg = sm.message(S.VOLTAGE)

    def frame(t, amps):
        return can.Message(arbitration_id=msg.frame_id, is_extended_id=False, timestamp=t,
                           data=msg.encode({"BattV": 1250, "BattI": amps * 10, "PowerMode": 0}, scaling=False))
    p = Pipeline(sm, StateStore(tmp_path / "s"), battery=BatteryInfo("OLD", 200, 50.0, None))
    p.feed_many(frame(D0 + k, -20) for k in range(10))
    p.feed(frame(D0 + 86400, -20))
    p.close()
    p.store.close()
    p = Pipeline(sm, StateStore(tmp_path / "s"), battery=BatteryInfo("NEW", 300, 70.0, None))
    changes = []
    p.add_battery_changed_listener(lambda old, new: changes.append((old, new)))
    p.feed_many(frame(D0 + 86400 + k, -20) for k in range(1, 10))
    p.feed(frame(D0 + 2 * 86400, -20))
    p.close()
    rows = p.store.history()
    assert changes == [("OLD", "NEW")]
    # OLD was still in the car at midnight (its last sample): its day closes too; NEW starts its own
    assert sorted((r["Battery_ID"], r["Date"]) for r in rows) == [("NEW", "2024-03-02"), ("OLD", "2024-03-01"),
                                                                  ("OLD", "2024-03-02")]
    new = [r for r in rows if r["Battery_ID"] == "NEW"]
    assert new[0]["Battery_Rated_Cycles"] == 300 and new[0]["Lifetime_Cycles_Used"] == new[0]["Daily_Cycles_Used"]
    p.store.close()
