"""trey-export release report --broker HOST:PORT [--slot battery] [--wait S]

Per-cohort comparison of live vs shadow models from the fleet's retained status messages
(agent status "models" + "lifecycle": what each car installed, refused or rolled back, and
its running shadow evaluation). Cars running a shadow are the release's cohort; the rest are
listed by outcome. Prints one JSON object.
"""

from __future__ import annotations

import json
import threading
import time

from agent import topics as T
from agent.config import parse_listen


def configure(p) -> None:
    p.add_argument("--broker", required=True, help="MQTT broker HOST:PORT")
    p.add_argument("--slot", default="battery", choices=("battery", "compliance"))
    p.add_argument("--wait", type=float, default=1.5, help="seconds to collect retained status messages")


def collect(broker: str, wait: float) -> dict[str, dict]:
    import paho.mqtt.client as mqtt
    host, port = parse_listen(broker, "--broker")
    out: dict[str, dict] = {}
    lock = threading.Lock()

    def on_message(c, u, m):
        try:
            kind, vid, obj = T.decode_uplink(m.topic, m.payload)
        except T.PayloadError:
            return
        with lock:
            out[vid] = obj

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.on_message = on_message
    c.on_connect = lambda cl, *a: cl.subscribe(f"{T.PREFIX}/+/status", 1)
    c.connect(host, port)
    c.loop_start()
    time.sleep(wait)
    c.loop_stop()
    c.disconnect()
    return out


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return round(sum(xs) / len(xs), 5) if xs else None


def summarise(statuses: dict[str, dict], slot: str) -> dict:
    outcomes: dict[str, int] = {}
    shadow_cars = []
    for vid, st in sorted(statuses.items()):
        m = (st.get("models") or {}).get(slot) or {}
        outcomes[m.get("outcome", "none")] = outcomes.get(m.get("outcome", "none"), 0) + 1
        sh = (((st.get("lifecycle") or {}).get(slot) or {}).get("shadow")) or None
        if sh:
            shadow_cars.append((vid, sh))
    cohort = {"cars": [v for v, _ in shadow_cars], "shadow_versions": sorted({s["version"] for _, s in shadow_cars})}
    evs = [s.get("evaluation") or {} for _, s in shadow_cars]
    if slot == "battery":
        for role in ("live", "shadow"):
            cohort[f"mae_{role}"] = _mean([(e.get("mae") or {}).get(role) for e in evs])
            by_h = [(e.get("mae_by_horizon") or {}).get(role) or [] for e in evs]
            cohort[f"mae_{role}_at_h"] = {h: _mean([b[h - 1] if len(b) >= h else None for b in by_h])
                                          for h in (1, 7, 14, 30)}
        cohort["alert_agreement"] = _mean([(e.get("alerts") or {}).get("agreement") for e in evs])
        cohort["days"] = _mean([e.get("days") for e in evs])
    else:
        cohort["verdict_agreement"] = _mean([e.get("agreement") for e in evs])
        cohort["notes"] = sum(e.get("notes") or 0 for e in evs)
    return {"slot": slot, "vehicles": len(statuses), "outcomes": outcomes, "shadow_cohort": cohort}


def main(args) -> int:
    print(json.dumps(summarise(collect(args.broker, args.wait), args.slot)))
    return 0
