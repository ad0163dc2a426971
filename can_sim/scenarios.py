"""Named scenarios: a driver, a battery design and what goes wrong on the bus.

`healthy`        commuter, 300-cycle 70 Ah battery: ~0.15-0.3 cycles/day, far from end of life.
`aging`          heavy user, 150-cycle 60 Ah battery: ~0.4-0.7 cycles/day, reaches its rated
                 cycles within ~300-350 days from new (sooner with --battery-cycles/-age-days).
`sensor-faults`  healthy + IBS dropouts, stuck temperature/SoC, and injected bad frames
                 (out_of_range, bad_dlc, undecodable) counted in <truth>.faults.json.
`busy-bus`       healthy + many unrelated IDs after every frame set (counted as unknown_id).
"""

from __future__ import annotations

from dataclasses import dataclass

from can_sim.battery import BatteryDesign
from can_sim.driving import PROFILES, Climate, UsageProfile


@dataclass(frozen=True)
class FaultSpec:
    dropout_window_prob: float = 0.3     # per day: a 1-4 h window without IBS frames
    drop_frame_prob: float = 0.01        # per frame in droppable sets
    stuck_window_prob: float = 0.25      # per day: a 2-8 h window of stuck temperature/SoC
    out_of_range_prob: float = 0.03      # per frame set: one extra out-of-range frame
    bad_dlc_prob: float = 0.03           # per frame set: one extra truncated frame
    undecodable_prob: float = 0.02       # per frame set: one extra remote frame on a mapped ID


@dataclass(frozen=True)
class BusySpec:
    frames_per_set: int = 20             # unrelated frames after every frame set
    n_ids: int = 48                      # distinct unrelated IDs


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    profile: UsageProfile
    design: BatteryDesign
    climate: Climate = Climate()
    faults: FaultSpec | None = None
    busy: BusySpec | None = None


SCENARIOS: dict[str, Scenario] = {
    "healthy": Scenario("healthy", "commuter, new 300-cycle battery, clean bus",
                        PROFILES["commuter"], BatteryDesign(rated_cycles=300, capacity_ah=70.0)),
    "aging": Scenario("aging", "heavy user, 150-cycle battery that wears out within the run",
                      PROFILES["heavy"], BatteryDesign(rated_cycles=150, capacity_ah=60.0)),
    "sensor-faults": Scenario("sensor-faults", "healthy + dropouts, stuck values, bad frames",
                              PROFILES["commuter"], BatteryDesign(rated_cycles=300, capacity_ah=70.0),
                              faults=FaultSpec()),
    "busy-bus": Scenario("busy-bus", "healthy + many unrelated IDs at high rate",
                         PROFILES["commuter"], BatteryDesign(rated_cycles=300, capacity_ah=70.0),
                         busy=BusySpec()),
}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
