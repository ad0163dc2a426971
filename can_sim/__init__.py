"""can_sim — the engineers' virtual car: a 12 V battery + usage model that drives CAN frames
(encoded through the agent's DBC + signal map) onto any python-can bus, with the exact
ground truth of what it sent.

In-process API (stable; other parts build on it)
------------------------------------------------
    from datetime import date
    from can_sim import Simulator, send_stream, open_bus, replay, read_log, SCENARIOS

    sim = Simulator("aging", seed=7, start=date(2024, 1, 1), days=400,
                    battery_age_days=0,          # battery installed N days before start
                    battery_cycles=None,         # or: lifetime cycles used at start (IBS counter follows)
                    replace_battery_day=None,    # N: new battery (id+1, counter 0) at midnight of day N
                    drive_period_s=60,           # frame-set period while driving
                    busy_frames=None,            # unrelated frames per set (busy-bus default 20)
                    battery_id=None, dbc=None, signal_map=None)   # defaults: derived from seed / agent's files

    for vehicle_time, msg in sim.frames():   # fresh deterministic stream each call; msg.timestamp == vehicle_time
        agent_reader.feed(msg)               # (or send it: see send_stream)
    rows = sim.truth()          # list[dict] keyed by agent.schema.DAILY_COLUMNS: what a perfect agent computes
    faults = sim.faults()       # {"unknown_id", "bad_dlc", "out_of_range", "undecodable", "no_time": count}
    sim.write_truth("truth.csv")            # + truth.faults.json
    sim.start_epoch, sim.end_epoch          # vehicle time of the first / last frame set
    sim.stats                               # frames, sets, dropped, stuck_sets, injected (after a pass)

    bus = open_bus("virtual", "demo")       # any python-can interface; "none" -> None (no bus)
    stats = send_stream(bus, sim.frames(), speed=86400, record="drive.log")   # speed=None: max speed
    replay("drive.log", bus, speed=None)    # recorded timestamps are vehicle time

`sim.truth()` without a prior full `frames()` pass runs one itself (~1 s per 80 simulated days).
The truth covers days start .. start+days-1; the last frame set is at midnight after the last
day (it closes that day). Same seed + arguments -> identical frames and truth.

Usage model for fleet generators (pure numpy, no CAN): `can_sim.driving` (UsageProfile,
PROFILES, plan_day, day_rng, Climate), `can_sim.battery` (BatteryDesign, Battery physics,
daily_usage(profile, design, start, days, seed) -> trips / trip_minutes / cycles arrays).

Modules: driving (trips, climate) · battery (SoC, IBS counter, wear, voltages) · scenarios ·
frames (encoding via the signal map, bad-frame builders) · simulator (frame sets, faults) ·
truth (reference rollup, CSV, faults.json) · runner (pacing, record, replay) · cli (`trey-sim`).
"""

from can_sim.runner import SendStats, open_bus, read_log, replay, send_stream
from can_sim.scenarios import SCENARIOS, Scenario, get_scenario
from can_sim.simulator import Simulator

__all__ = ["Simulator", "SCENARIOS", "Scenario", "get_scenario", "open_bus", "send_stream", "replay",
           "read_log", "SendStats"]
