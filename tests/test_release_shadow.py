"""Shadow evaluation, promotion and automatic rollback in the real daemon (agent.daemon.Agent,
in-process) fed by the virtual car over a python-can virtual bus, with a real mosquitto:

  1. `trey-export release battery --shadow` installs a different forecaster beside the live one;
  2. 60 simulated days: both forecast every closed day, only the live one alerts; the retained
     status carries both models' MAE by horizon (realised cycles vs what each forecast for that
     day 1..30 days earlier) and their alert agreement;
  3. `trey-export release battery --promote` swaps them (no new download);
  4. a release whose model returns NaN is installed and rolled back automatically to the
     previous model kept on disk at its first forecast; the event is on status and health.
"""

from __future__ import annotations

import json
import threading
import uuid

import paho.mqtt.client as mqtt

from agent import topics as T
from agent.config import load_config
from export.cli import main as export_main
from tests.conftest import wait_until
from tests.release_support import scaled_battery_bundle

VID = "CAR-SHADOW"


def test_shadow_sixty_days_promote_then_nan_rollback(tmp_path, broker, capsys):
    from agent.daemon import Agent
    from can_sim import Simulator, open_bus, send_stream

    channel = f"shadow-{uuid.uuid4().hex[:8]}"
    cfg_path = tmp_path / "agent.toml"
    cfg_path.write_text("\n".join([
        "[vehicle]", f'id = "{VID}"', "[can]", 'interface = "virtual"', f'channel = "{channel}"',
        "[state]", f'dir = "{tmp_path / "state"}"', "[hmi]", "enabled = false",
        "[mqtt]", f'host = "{broker.host}"', f"port = {broker.port}"]) + "\n")
    agent = Agent(load_config(cfg_path), install_signals=False)
    agent.start()
    loop = threading.Thread(target=agent.run, daemon=True)
    loop.start()
    bus = open_bus("virtual", channel)
    status: dict = {}
    cloud = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cloud-shadow", protocol=mqtt.MQTTv5)
    cloud.on_message = lambda c, u, m: m.payload and status.update(json.loads(m.payload))
    cloud.connect(broker.host, broker.port)
    cloud.subscribe(T.status_topic(VID), 1)
    cloud.loop_start()
    where = f"{broker.host}:{broker.port}"

    def battery_health():
        return agent.health()["models"]["battery"]

    try:
        wait_until(lambda: agent.sync.status()["connected"], 10, what="connected")
        shipped = battery_health()["version"]
        shadow_dir = scaled_battery_bundle(tmp_path, "40.0.0-shadow", 1.25)
        assert export_main(["release", "battery", "--bundle", str(shadow_dir), "--shadow", "--broker", where]) == 0
        wait_until(lambda: (battery_health()["shadow"] or {}).get("version") == "40.0.0-shadow", 20,
                   what=f"shadow installed: {agent.sync.status()['models']}")
        assert battery_health()["version"] == shipped                 # the live model is unchanged

        sim = Simulator("aging", seed=3, days=64, battery_age_days=300, battery_cycles=150.0, drive_period_s=300)
        frames = list(sim.frames())
        send_stream(bus, frames, speed=None)
        last = sim.truth()[-2]["Date"]
        wait_until(lambda: ((agent.battery().get("forecast") or {}).get("as_of") or "") >= last, 120,
                   what=f"forecasts through {last}")

        ev = battery_health()["shadow"]["evaluation"]
        assert ev["days"] >= 58
        for role in ("live", "shadow"):
            maes = ev["mae_by_horizon"][role]
            assert len(maes) == 30 and all(m is not None for m in maes[:28]), maes
        assert ev["mae"]["live"] != ev["mae"]["shadow"]              # two different models, measured
        assert ev["alerts"]["days"] >= 58 and ev["alerts"]["agreement"] is not None
        # the same figures on the retained status topic
        wait_until(lambda: (((status.get("lifecycle") or {}).get("battery") or {}).get("shadow") or {})
                   .get("evaluation", {}).get("days", 0) >= 58, 20, what="shadow evaluation on the status topic")
        on_status = status["lifecycle"]["battery"]["shadow"]["evaluation"]
        assert set(on_status["mae_by_horizon"]) == {"live", "shadow"}
        # the cloud's per-cohort comparison from the fleet's retained status
        capsys.readouterr()
        assert export_main(["release", "report", "--broker", where]) == 0
        report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert report["shadow_cohort"]["cars"] == [VID]
        rc = report["shadow_cohort"]
        assert None not in (rc["mae_live"], rc["mae_shadow"]) and rc["mae_live"] != rc["mae_shadow"]
        assert rc["alert_agreement"] is not None and rc["days"] >= 58
        # the shadow never raised an alert of its own: every battery alert names the live model
        assert all(shipped in json.dumps(a["explanation"].get("model")) for a in agent.alerts.list()
                   if a["kind"] == "battery")

        # promote: a signed instruction swaps them (the shadow's own target, shadow=false)
        assert export_main(["release", "battery", "--promote", "--broker", where]) == 0
        wait_until(lambda: agent.sync.status()["models"]["battery"]["outcome"] == "promoted", 20,
                   what=f"promoted: {agent.sync.status()['models']}")
        assert battery_health()["version"] == "40.0.0-shadow" and battery_health()["shadow"] is None

        # a release that returns NaN: installed, rolled back at its first forecast
        bad = scaled_battery_bundle(tmp_path, "41.0.0-nan", float("nan"))
        assert export_main(["release", "battery", "--bundle", str(bad), "--broker", where]) == 0
        wait_until(lambda: battery_health()["version"] == "41.0.0-nan", 20, what="NaN model installed")
        more = Simulator("aging", seed=3, days=66, battery_age_days=300, battery_cycles=150.0, drive_period_s=300)
        send_stream(bus, [f for f in more.frames() if f[0] > frames[-1][0]], speed=None)
        event = wait_until(lambda: (battery_health()["event"] or {}).get("event") == "rolled_back"
                           and battery_health()["event"], 60, what=f"rolled back: {battery_health()}")
        assert battery_health()["version"] == "40.0.0-shadow"
        assert event["event"] == "rolled_back" and "NaN" in event["reason"]
        wait_until(lambda: (status.get("models") or {}).get("battery", {}).get("outcome") == "rolled_back", 20,
                   what="rollback on the status topic")
        fc = agent.battery()["forecast"]
        assert fc["model"].endswith("@40.0.0-shadow")                 # the day was forecast by the restored model
        assert all(x == x for x in fc["forecast_daily_cycles"])
    finally:
        cloud.loop_stop()
        cloud.disconnect()
        for slot in ("battery",):
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
            c.connect(broker.host, broker.port)
            c.publish(T.model_topic(slot), b"", qos=1, retain=True).wait_for_publish(5)
            c.disconnect()
        agent.request_stop()
        loop.join(10)
        bus.shutdown()
