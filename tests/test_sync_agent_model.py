"""The real daemon (agent.daemon.Agent, in-process) with [mqtt]: a downlink fuzz is counted
and changes nothing (alerts, models, components); a model announcement with a
wrong signature is refused and the current model keeps forecasting; a correctly signed one is
verified, swapped in and used by the next forecast."""

from __future__ import annotations

import random
import threading
import uuid

from agent import topics as T
from agent.bundle import DEV_TRUSTED_KEYS
from agent.config import load_config
from tests.conftest import wait_until
from tests.release_support import release_announcement, resigned_bundle
from tests.sync_support import fuzz_payloads

VID = "CAR-MODEL"


def test_announced_model_verified_swapped_and_used_by_next_forecast(tmp_path, broker):
    import paho.mqtt.client as mqtt
    from agent.daemon import Agent
    from can_sim import Simulator, open_bus, send_stream
    from export.bundle import generate_keypair

    channel = f"sync-{uuid.uuid4().hex[:8]}"
    cfg_path = tmp_path / "agent.toml"
    cfg_path.write_text("\n".join([
        "[vehicle]", f'id = "{VID}"',
        "[can]", 'interface = "virtual"', f'channel = "{channel}"',
        "[state]", f'dir = "{tmp_path / "state"}"',
        "[hmi]", "enabled = false",
        # explicit trusted keys (the shipped DEVELOPMENT key)
        "[models]", f'trusted_keys = ["{DEV_TRUSTED_KEYS}"]',
        "[mqtt]", f'host = "{broker.host}"', f"port = {broker.port}",
    ]) + "\n")
    agent = Agent(load_config(cfg_path), install_signals=False)
    agent.start()
    loop = threading.Thread(target=agent.run, daemon=True)
    loop.start()
    bus = open_bus("virtual", channel)
    cloud = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cloud-models", protocol=mqtt.MQTTv5)
    cloud.connect(broker.host, broker.port)
    cloud.loop_start()
    try:
        shipped, label = agent.battery_slot.bundle.version, agent.battery_slot.bundle.name
        sim = Simulator("healthy", seed=5, days=66, battery_age_days=200, drive_period_s=300)
        frames = list(sim.frames())
        cut = sim.start_epoch + 62 * 86400
        send_stream(bus, [f for f in frames if f[0] <= cut], speed=None)   # midnight set closes day 61
        wait_until(lambda: (agent.battery().get("forecast") or {}).get("as_of") == sim.truth()[61]["Date"], 60,
                   what=f"forecast after 62 days: {agent.battery().get('forecast')}")
        assert agent.battery()["forecast"]["model"] == f"{label}@{shipped}"
        # the ONNX model itself ran (not a model-free baseline)
        assert agent.battery()["forecast"]["fallback"] not in ("short_history_mean", "fleet_median")

        # 0. downlink fuzz against the real daemon: every payload counted, nothing changes
        alert, _ = agent.alerts.raise_or_update("compliance:VIN-F:alternator", "compliance", "warning",
                                                "Alternator out of compliance", "check it", {"why": ["1985"]})
        before = (agent.alerts.list(), agent.battery_slot.bundle.sha256, agent.components.list())
        fuzz = fuzz_payloads(random.Random(9), 1500, VID)
        for topic, payload in fuzz:
            cloud.publish(topic, payload, qos=1)
        wait_until(lambda: sum(agent.sync.status()["downlink_rejected"].values()) >= len(fuzz), 30,
                   what=f"{len(fuzz)} rejections: {agent.sync.status()['downlink_rejected']}")
        assert sum(agent.sync.status()["downlink_rejected"].values()) == len(fuzz)
        assert (agent.alerts.list(), agent.battery_slot.bundle.sha256, agent.components.list()) == before
        assert loop.is_alive() and agent.sync.status()["connected"]
        rejected_before_models = sum(agent.sync.status()["downlink_rejected"].values())

        # 1. signed with an untrusted key: refused before the daemon sees it; old model serves
        generate_keypair(tmp_path / "rogue.pem", tmp_path / "rogue.pub")
        rogue = resigned_bundle(tmp_path, "66.0.0-rogue", bundle_key=tmp_path / "rogue.pem")
        cloud.publish(T.model_topic("battery"), T.encode(release_announcement("battery", rogue, 1)),
                      qos=1, retain=True).wait_for_publish(5)
        wait_until(lambda: agent.sync.status()["models"].get("battery", {}).get("outcome") == "refused", 20,
                   what="rogue bundle refused")
        assert agent.battery_slot.bundle.version == shipped

        # 2. correctly signed: verified, swapped, used by the next forecast
        good = resigned_bundle(tmp_path, "77.0.0-test")
        cloud.publish(T.model_topic("battery"), T.encode(release_announcement("battery", good, 2)),
                      qos=1, retain=True).wait_for_publish(5)
        wait_until(lambda: agent.sync.status()["models"]["battery"].get("outcome") == "installed", 20,
                   what=f"good bundle installed: {agent.sync.status()['models']}")
        assert agent.battery_slot.bundle.version == "77.0.0-test"
        send_stream(bus, [f for f in frames if f[0] > cut], speed=None)
        last = sim.truth()[-1]["Date"]
        wait_until(lambda: agent.battery()["forecast"]["as_of"] == last, 60, what="next forecast")
        assert agent.battery()["forecast"]["model"] == f"{label}@77.0.0-test"
        assert agent.battery()["forecast"]["fallback"] not in ("short_history_mean", "fleet_median")
        assert sum(agent.sync.status()["downlink_rejected"].values()) == rejected_before_models + 1   # the rogue one
        cloud.publish(T.model_topic("battery"), b"", qos=1, retain=True).wait_for_publish(5)
    finally:
        cloud.loop_stop()
        cloud.disconnect()
        agent.request_stop()
        loop.join(10)
        bus.shutdown()
