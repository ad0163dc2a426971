"""Model lifecycle in the real daemon (in-process, real ONNX models made from the shipped
bundles): a compliance shadow's verdicts are compared with the live ones on the same notes and
never alert; promotion swaps it in and re-classifies; a compliance model returning NaN is rolled
back to the previous one on disk; a battery shadow with a promotion policy in its signed
release is promoted by the car itself once the policy holds; shadows survive a restart."""

from __future__ import annotations

import threading
import uuid

from agent.bundle import DEFAULT_COMPLIANCE_BUNDLE
from agent.config import load_config
from tests.conftest import wait_until
from tests.daemon_support import NONCOMPLIANT, SPEC_NOTES, write_spec
from tests.release_support import (bundle_files, lenient_compliance_bundle, nan_compliance_bundle, scaled_bundle,
                                   shadow_release)


def _agent(tmp_path, channel=None, spec=None):
    from agent.daemon import Agent
    cfg = tmp_path / "agent.toml"
    cfg.write_text("\n".join(["[vehicle]", 'id = "CAR-LC"', "[can]", 'interface = "virtual"',
                              f'channel = "{channel or "lc-" + uuid.uuid4().hex[:8]}"',
                              "[state]", f'dir = "{tmp_path / "state"}"', "[hmi]", "enabled = false",
                              "[components]", f'spec = "{spec or ""}"']) + "\n")
    return Agent(load_config(cfg), install_signals=False)


def test_compliance_shadow_agreement_promotion_and_nan_rollback(tmp_path):
    spec = write_spec(tmp_path / "components.jsonl")
    agent = _agent(tmp_path, spec=spec)
    agent.start()
    try:
        shipped = agent.compliance_slot.bundle.version
        lenient = lenient_compliance_bundle(tmp_path, "2.0.0-lenient")
        assert agent.install_bundle("compliance", bundle_files(lenient), shadow_release(tmp_path, "compliance", lenient))
        alerts_before = [a["key"] for a in agent.alerts.list(active_only=True)]
        agent.components.load_spec(spec, source="spec")            # the same notes through live + shadow
        ev = agent.health()["models"]["compliance"]["shadow"]["evaluation"]
        assert ev["notes"] == len(SPEC_NOTES)
        assert ev["agreement"] == (len(SPEC_NOTES) - len(NONCOMPLIANT)) / len(SPEC_NOTES)   # shadow says all fine
        assert [a["key"] for a in agent.alerts.list(active_only=True)] == alerts_before   # shadow never alerts/clears
        assert {c["component"] for c in agent.components.list() if not c["compliant"]} == NONCOMPLIANT

        assert agent.lifecycle.promote("compliance", "test")
        assert agent.compliance_slot.bundle.version == "2.0.0-lenient"
        # re-classified by the promoted model: it says "complies" to every fact, so nothing is
        # non-compliant — but a note that writes "fair" or "plastic" is not compliant either
        # (a complying fact needs its word in the note: agent/classify._FOUNDED): undetermined
        now = {c["component"]: c for c in agent.components.list()}
        assert all(c["model"].endswith("@2.0.0-lenient") for c in now.values())
        assert {k for k, c in now.items() if c["verdict"] == "undetermined"} == NONCOMPLIANT
        assert all(c["compliant"] for k, c in now.items() if k not in NONCOMPLIANT)

        nan = nan_compliance_bundle(tmp_path, "3.0.0-nan")
        assert agent.install_bundle("compliance", bundle_files(nan))
        # its first classification (the swap re-classifies) is NaN -> rolled back to 2.0.0-lenient
        assert agent.compliance_slot.bundle.version == "2.0.0-lenient"
        event = agent.health()["models"]["compliance"]["event"]
        assert event["event"] == "rolled_back" and "NaN" in event["reason"] and "3.0.0-nan" in event["failed"]
        assert all(c["model"].endswith("@2.0.0-lenient") for c in agent.components.list())
        assert shipped != "2.0.0-lenient"
    finally:
        agent.shutdown()


def test_battery_shadow_promoted_by_its_signed_policy_and_survives_restart(tmp_path):
    from can_sim import Simulator, open_bus, send_stream
    channel = f"lc-{uuid.uuid4().hex[:8]}"
    agent = _agent(tmp_path, channel)
    agent.start()
    loop = threading.Thread(target=agent.run, daemon=True)
    loop.start()
    bus = open_bus("virtual", channel)
    try:
        shadow = scaled_bundle(tmp_path, "60.0.0-policy", 1.05)
        policy = {"after_days": 6, "max_mae_ratio": 100.0, "min_agreement": 0.0}
        assert agent.install_bundle("battery", bundle_files(shadow), shadow_release(tmp_path, "battery", shadow,
                                                                                    promote=policy))
        # a restart keeps the shadow (and its policy)
        agent.request_stop()
        loop.join(10)
        agent = _agent(tmp_path, channel)
        agent.start()
        loop = threading.Thread(target=agent.run, daemon=True)
        loop.start()
        assert agent.health()["models"]["battery"]["shadow"]["version"] == "60.0.0-policy"
        sim = Simulator("aging", seed=8, days=12, battery_age_days=100, drive_period_s=300)
        send_stream(bus, list(sim.frames()), speed=None)
        event = wait_until(lambda: agent.health()["models"]["battery"]["event"], 60,
                           what=f"policy promotion: {agent.health()['models']['battery']}")
        assert agent.battery_slot.bundle.version == "60.0.0-policy"
        assert event["event"] == "promoted" and event["reason"].startswith("policy")
        assert agent.health()["models"]["battery"]["shadow"] is None
    finally:
        agent.request_stop()
        loop.join(10)
        bus.shutdown()


def test_first_release_failing_rolls_back_to_the_shipped_bundle(tmp_path):
    spec = write_spec(tmp_path / "components.jsonl")
    agent = _agent(tmp_path, spec=spec)
    agent.start()
    try:
        shipped = agent.compliance_slot.bundle.version
        nan = nan_compliance_bundle(tmp_path, "3.1.0-nan")
        assert agent.install_bundle("compliance", bundle_files(nan))
        assert agent.compliance_slot.bundle.version == shipped
        assert agent.compliance_slot.path == DEFAULT_COMPLIANCE_BUNDLE
        assert {c["component"] for c in agent.components.list() if not c["compliant"]} == NONCOMPLIANT
    finally:
        agent.shutdown()
    # after a restart the car serves the shipped bundle, not the failed release
    agent = _agent(tmp_path, spec=spec)
    agent.start()
    try:
        assert agent.compliance_slot.bundle.version == shipped
    finally:
        agent.shutdown()
