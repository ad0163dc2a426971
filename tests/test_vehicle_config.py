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
