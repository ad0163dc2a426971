"""`trey-agent demo`: the virtual car driving into the real agent, accelerated, with the HMI.

No broker, no CAN hardware: the simulator (can_sim, in-process) sends its frames on a
python-can `virtual` bus; the agent (agent.daemon.Agent, the same code `trey-agent run`
runs) reads that bus with the shipped model bundles, and serves the in-dash HMI. The car
has an aging battery close to its rated cycles and a few components, some of them out of
compliance, so both kinds of alert appear within a minute. Ctrl-C stops everything cleanly.

can_sim is the engineers' virtual car, not part of the agent's data path: it is loaded
here, inside the demo command only, when the demo runs.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import threading
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

log = logging.getLogger("agent.demo")

DEMO_VIN = "WVWZZZ1JZXW000042"
DEMO_COMPONENTS = [
    ("alternator", "manufactured in 1985 made of steel in fair condition"),
    ("starter motor", "manufactured in 2019 made of carbon fiber in new condition"),
    ("door hinge", "manufactured in 2012 made of plastic in good condition"),
    ("brake caliper", "manufactured in 2016 made of steel in good condition"),
    ("exhaust manifold", "manufactured in 1991 made of iron in poor condition"),
]


def configure(parser) -> None:
    parser.add_argument("--listen", default="127.0.0.1:8080", help="HMI address (default 127.0.0.1:8080)")
    parser.add_argument("--state", default="", help="state directory (default: a fresh temporary one)")
    parser.add_argument("--speed", type=float, default=86_400.0,
                        help="simulated seconds per real second (default 86400 = one day per second)")
    parser.add_argument("--days", type=int, default=120, help="simulated days (default 120)")
    parser.add_argument("--seed", type=int, default=7, help="simulation seed (default 7)")
    parser.add_argument("--battery-cycles", type=float, default=None,
                        help="battery lifetime cycles at the start (default: rated - ~40 days of use)")
    parser.add_argument("--exit-when-done", action="store_true",
                        help="stop when the simulation has ended (default: keep the HMI up until Ctrl-C)")


def _components_spec(state: Path) -> Path:
    spec = state / "demo_components.jsonl"
    doc = {"vin": DEMO_VIN, "components": [{"component": c, "note": n} for c, n in DEMO_COMPONENTS]}
    spec.write_text(json.dumps(doc) + "\n")
    return spec


def _printer(out):
    lock = threading.Lock()
    last_days: dict[int, int] = {}

    def show(alert: dict) -> None:
        change = alert.get("change")
        if change == "updated":
            # The battery alert is updated every simulated day: print it weekly-ish only.
            days = (alert.get("explanation") or {}).get("days_to_rated")
            prev = last_days.get(alert["id"])
            due = prev is None or prev - days >= 5 or (days == 0 and prev != 0)
            if alert["kind"] != "battery" or days is None or not due:
                return
        if alert["kind"] == "battery":
            last_days[alert["id"]] = (alert.get("explanation") or {}).get("days_to_rated") or 0
        if change not in ("raised", "updated", "cleared", "acknowledged"):
            return
        day = alert.get("vehicle_date") or ""
        tag = {"battery": "BATTERY", "compliance": "COMPLIANCE", "compliance_incomplete": "INCOMPLETE"}.get(
            alert["kind"], alert["kind"].upper())
        why = ""
        x = alert.get("explanation") or {}
        if alert["kind"] == "compliance" and x.get("why"):
            why = "  (because of: " + ", ".join(x["why"]) + ")"
        elif alert["kind"] == "compliance_incomplete" and x.get("missing"):
            why = "  (not stated: " + ", ".join(x["missing"]) + ")"
        elif alert["kind"] == "battery" and x.get("summary") and change == "raised":
            why = "  (" + x["summary"] + ")"
        with lock:
            print(f"[{day or 'now':>10}] {tag:<10} {change:<12} #{alert['id']} {alert['message']}{why}",
                  file=out, flush=True)

    return show


class _CarThread(threading.Thread):
    """Drives the simulator's frames onto the virtual bus at `speed` x real time."""

    def __init__(self, sim_api, sim, channel: str, speed: float):
        super().__init__(name="virtual-car", daemon=True)
        self.api, self.sim, self.channel, self.speed = sim_api, sim, channel, speed
        self.stop_event = threading.Event()
        self.done = threading.Event()
        self.frames = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            bus = self.api.open_bus("virtual", self.channel)
            try:
                stats = self.api.send_stream(bus, self.sim.frames(), speed=self.speed,
                                             should_stop=self.stop_event.is_set)
                self.frames = stats.frames
            finally:
                bus.shutdown()
        except BaseException as exc:   # reported by the demo's main thread
            self.error = exc
        finally:
            self.done.set()


def main(args) -> int:
    import importlib

    from agent.config import ConfigError, config_from_dict, parse_listen
    from agent.daemon import Agent

    # The demo is the one agent command that drives the virtual car; can_sim ships in the
    # same package but is NOT on the car's data path (tests/test_import_rule.py checks the
    # data-path modules statically; `trey-agent run` never loads can_sim, see
    # tests/test_daemon_imports.py). Loaded by name, here only, so the rule stays visible.
    sim_api = importlib.import_module("can_sim")

    try:
        parse_listen(args.listen, "--listen")
    except ConfigError as exc:
        print(f"trey-agent demo: {exc}", file=sys.stderr)
        return 2
    if args.speed <= 0 or args.days < 2:
        print("trey-agent demo: --speed must be > 0 and --days >= 2", file=sys.stderr)
        return 2
    state = Path(args.state) if args.state else Path(tempfile.mkdtemp(prefix="trey-demo-"))
    state.mkdir(parents=True, exist_ok=True)
    channel = f"trey-demo-{uuid.uuid4().hex[:8]}"
    cfg = config_from_dict({
        "vehicle": {"id": "DEMO-CAR"},
        "can": {"interface": "virtual", "channel": channel},
        "state": {"dir": str(state / "agent")},
        "hmi": {"listen": args.listen},
        "components": {"spec": str(_components_spec(state))},
    }, source="<demo>")

    # The car: the `aging` scenario with a battery ~40 days of use short of its rated cycles.
    scenario = sim_api.get_scenario("aging")
    rated = scenario.design.rated_cycles
    cycles = args.battery_cycles if args.battery_cycles is not None else rated * 0.8
    start = date.today() - timedelta(days=args.days)
    sim = sim_api.Simulator(scenario, seed=args.seed, start=start, days=args.days, battery_age_days=400,
                    battery_cycles=cycles)

    agent = Agent(cfg)
    agent.start()
    out = sys.stdout
    print(f"trey-agent demo — virtual car ({scenario.description}), battery at {cycles:.0f} of {rated} rated cycles",
          file=out)
    print(f"  HMI:    {agent.hmi.url}   (open it in a browser)", file=out)
    print(f"  state:  {state}", file=out)
    print(f"  speed:  {args.speed:g}x ({args.speed / 86400:.2g} simulated days per second), {args.days} days",
          file=out)
    print("  alerts appear below as the agent raises them; Ctrl-C to stop", file=out, flush=True)
    states: dict[int, str] = {}
    show = _printer(out)

    def on_alert(a: dict) -> None:
        states[a["id"]] = a["state"]
        show(a)

    agent.alerts.add_listener(on_alert)
    for a in agent.alerts.list(active_only=True):      # raised during start (component spec)
        on_alert(dict(a, change="raised"))

    car = _CarThread(sim_api, sim, channel, args.speed)
    car.start()

    def watch_car():
        car.done.wait()
        if car.error is not None:
            log.error("virtual car failed: %s", car.error)
        elif not car.stop_event.is_set():
            print(f"simulation finished ({car.frames} frames); "
                  + ("stopping" if args.exit_when_done else "HMI still up — Ctrl-C to quit"), file=out, flush=True)
        if args.exit_when_done or car.error is not None:
            time.sleep(1.0)         # let the agent drain the bus
            agent.request_stop()

    threading.Thread(target=watch_car, name="demo-watch", daemon=True).start()
    try:
        rc = agent.run()            # SIGINT/SIGTERM -> clean stop
    finally:
        car.stop_event.set()
        car.join(5)
    active = sum(1 for st in states.values() if st != "cleared")
    print(f"stopped: {active} active alerts kept in {state / 'agent'}", file=out, flush=True)
    return 1 if car.error is not None else rc
