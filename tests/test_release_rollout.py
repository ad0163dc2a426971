"""Staged rollout: 20 cars (real agent.sync.Sync instances, in-process, each with its own
state dir and trust store) on one real mosquitto; `trey-export release battery --cohort 25`
signs the cohort into the release; exactly the cars the stable vehicle-id hash selects
install it, the others report not_in_cohort and keep their model. Widening to 60 % in a new
release adds cars and drops none."""

from __future__ import annotations

import json

from agent import release_metadata as R
from agent.alerts import Alerts
from agent.sync import Sync
from export.cli import main as export_main
from tests.conftest import wait_until
from tests.release_support import resigned_bundle
from tests.sync_support import agent_cfg, open_store


class Car:
    def __init__(self, tmp, vid, broker):
        self.vid, self.installed = vid, []
        store = open_store(tmp / vid)
        self.sync = Sync(agent_cfg(tmp / vid, broker.host, broker.port, vid), store, Alerts(store),
                         on_bundle=self.install, backoff_min=0.05, backoff_max=0.3, status_interval=1.0)

    def install(self, slot, files, release):
        self.installed.append((slot, json.loads(files["manifest.json"])["version"], release.version))
        return True

    def outcome(self):
        return (self.sync.status()["models"].get("battery") or {}).get("outcome")


def test_release_to_25_percent_installs_exactly_the_cohort(tmp_path, broker, capsys):
    cars = [Car(tmp_path, f"VIN-{i:03d}", broker) for i in range(20)]
    for c in cars:
        c.sync.start()
    try:
        wait_until(lambda: all(c.sync.status()["connected"] for c in cars), 20, what="20 cars connected")
        cohort = R.in_cohort
        expected = {c.vid for c in cars if cohort({"percent": 25.0, "salt": "battery"}, c.vid)}
        assert 0 < len(expected) < 20
        bundle = resigned_bundle(tmp_path, "30.0.0")
        assert export_main(["release", "battery", "--bundle", str(bundle), "--broker",
                            f"{broker.host}:{broker.port}", "--cohort", "25"]) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["version"] == 1 and out["cohort"] == {"percent": 25.0, "salt": "battery"}
        wait_until(lambda: all(c.outcome() in ("installed", "not_in_cohort") for c in cars), 30,
                   what=f"every car decided: {[c.outcome() for c in cars]}")
        assert {c.vid for c in cars if c.installed} == expected
        assert all(c.installed == [("battery", "30.0.0", 1)] for c in cars if c.vid in expected)
        assert all(c.outcome() == "not_in_cohort" for c in cars if c.vid not in expected)

        # widen: the next release (version read back from the broker: 2) to 60 %
        wider = {c.vid for c in cars if cohort({"percent": 60.0, "salt": "battery"}, c.vid)}
        assert expected <= wider
        assert export_main(["release", "battery", "--bundle", str(resigned_bundle(tmp_path, "31.0.0")),
                            "--broker", f"{broker.host}:{broker.port}", "--cohort", "60"]) == 0
        wait_until(lambda: sum(1 for c in cars if any(v == 2 for _, _, v in c.installed)) == len(wider), 30,
                   what="the wider cohort installed release 2")
        assert {c.vid for c in cars if any(v == 2 for _, _, v in c.installed)} == wider
    finally:
        for c in cars:
            c.sync.stop()
