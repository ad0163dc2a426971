"""The in-dash page in a real headless Chromium: it shows an alert raised by the test,
and acknowledging it on the page changes its state through the API. Screenshots of both
head-unit sizes are kept under the test's tmp dir (path printed)."""

from __future__ import annotations

import os
import shutil
import time

from tests.daemon_support import InProcessAgent, agent_config, http


def test_page_shows_and_acknowledges_alert(browser, tmp_path):
    with InProcessAgent(agent_config(tmp_path)) as run:
        agent = run.agent
        page = browser.new_page(viewport={"width": 800, "height": 480})
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(run.url + "/")
        page.wait_for_selector("#chip-live.on", timeout=10_000)      # live event stream connected

        # Raised while the page is open: it must arrive over the event stream.
        alert, _ = agent.alerts.raise_or_update(
            "battery:B-77", "battery", "warning", "Battery service needed",
            "Battery expected to reach end of life in about 11 days — schedule a service appointment",
            {"lifetime_cycles": 188.4, "rated_cycles": 200, "projected_lifetime_cycles_30d": 214.9,
             "days_to_rated": 11, "recent_mean_daily_cycles": 1.05, "fleet_median_daily_cycles": 0.62,
             "usage_vs_fleet": 1.69}, vehicle_date="2024-05-01")
        agent.alerts.raise_or_update(
            "compliance:TEST:alternator", "compliance", "warning", "Alternator out of compliance",
            "The alternator does not meet the component regulation — have it checked at your next service.",
            {"component": "alternator", "note": "manufactured in 1985 made of steel in fair condition",
             "why": ["1985", "fair"]})
        card = page.locator(f'article.alert[data-id="{alert["id"]}"]')
        card.wait_for(timeout=10_000)
        assert "11 days" in card.inner_text()
        assert "1.7× the fleet norm" in card.inner_text()           # the explanation is shown
        assert page.locator("#alert-count").inner_text() == "2"
        shot = tmp_path / "hmi_800x480_raised.png"
        page.screenshot(path=str(shot))

        card.locator("button.ack").click()
        page.wait_for_selector(f'article.alert[data-id="{alert["id"]}"][data-state="acknowledged"]', timeout=10_000)
        status, got = http("GET", f"{run.url}/api/alerts/{alert['id']}")
        assert status == 200 and got["state"] == "acknowledged" and got["acknowledged_by"] == "driver"
        assert page.locator("#alert-count").inner_text() == "1"

        big = browser.new_page(viewport={"width": 1280, "height": 720})
        big.goto(run.url + "/")
        big.wait_for_selector(f'article.alert[data-id="{alert["id"]}"][data-state="acknowledged"]', timeout=10_000)
        shot2 = tmp_path / "hmi_1280x720_acknowledged.png"
        big.screenshot(path=str(shot2))
        # Nothing fetched from anywhere but the agent (works offline).
        assert requests and all(u.startswith(run.url) for u in requests), requests
        page.close()
        big.close()
    artifacts = os.environ.get("TREY_ARTIFACTS")
    if artifacts:
        os.makedirs(artifacts, exist_ok=True)
        for s in (shot, shot2):
            shutil.copy(s, artifacts)
    print(f"\nHMI screenshots: {shot} {shot2}")


def test_snapshot_older_than_a_live_alert_does_not_hide_it(browser, tmp_path):
    """The page re-reads /api/* whenever its event stream (re)connects. An alert raised while
    that read is in flight reaches the page over the stream first; the older snapshot landing
    afterwards must not wipe it off the screen (this race made the alert vanish in CI)."""
    with InProcessAgent(agent_config(tmp_path)) as run:
        agent = run.agent
        page = browser.new_page(viewport={"width": 800, "height": 480})
        state = {"served": 0, "armed": False, "alert": None}

        def alerts_route(route):
            snapshot = route.fetch()                   # taken before the alert exists
            if state["armed"]:
                state["armed"] = False
                state["alert"], _ = agent.alerts.raise_or_update(
                    "compliance:TEST:fuel pump", "compliance", "warning", "Fuel pump out of compliance",
                    "The fuel pump does not meet the component regulation.",
                    {"component": "fuel pump", "note": "plastic fuel pump from 2011", "why": ["plastic"]})
                time.sleep(0.5)                        # the stream delivers it before the snapshot
            state["served"] += 1
            route.fulfill(response=snapshot)

        page.route("**/api/alerts", alerts_route)
        page.goto(run.url + "/")
        page.wait_for_selector("#chip-live.on", timeout=10_000)
        # The load-time and on-connect reads are done. (Not conftest.wait_until: its sleep does not
        # pump Playwright, so the route handler would never run.)
        for _ in range(200):
            if state["served"] >= 2:
                break
            page.wait_for_timeout(25)
        assert state["served"] >= 2 and agent.hmi.events.clients == 1

        state["armed"] = True
        page.evaluate("refresh()")                    # what a stream reconnect does
        assert state["alert"] is not None
        page.locator(f'article.alert[data-id="{state["alert"]["id"]}"]').wait_for(timeout=5_000)
        assert page.locator("#alert-count").inner_text() == "1"
        page.close()


def test_page_shows_models_live_shadow_and_last_refused(browser, tmp_path):
    """Per model slot: live version, shadow version and the last refused bundle with its reason."""
    import io
    import tarfile

    from agent import release_metadata as R
    from export.bundle import DEV_SIGNING_KEY, generate_keypair, tar_bundle
    from export.release import release_doc
    from tests.release_support import resigned_bundle

    def files(d):
        with tarfile.open(fileobj=io.BytesIO(tar_bundle(d))) as t:
            return {m.name: t.extractfile(m).read() for m in t.getmembers()}

    with InProcessAgent(agent_config(tmp_path)) as run:
        agent = run.agent
        shadow = resigned_bundle(tmp_path, "50.0.0-shadow")
        doc = release_doc("battery", 1, tar_bundle(shadow), {"name": "b", "version": "50.0.0-shadow"},
                          [DEV_SIGNING_KEY], shadow=True)
        rel = R.TrustStore(tmp_path / "trust").check_release(doc, "battery")
        assert agent.install_bundle("battery", files(shadow), rel)
        generate_keypair(tmp_path / "rogue.pem", tmp_path / "rogue.pub")
        rogue = resigned_bundle(tmp_path, "66.0.0-rogue", bundle_key=tmp_path / "rogue.pem")
        assert not agent.install_bundle("battery", files(rogue))
        page = browser.new_page(viewport={"width": 800, "height": 480})
        page.goto(run.url + "/")
        line = page.locator('#models .model-slot[data-slot="battery"]')
        line.wait_for(timeout=10_000)
        text = line.inner_text()
        assert f"battery model {agent.battery_slot.bundle.version}" in text
        assert "shadow 50.0.0-shadow" in text and "last refused" in text and "signature" in text
        h = http("GET", run.url + "/api/health")[1]["models"]["battery"]
        assert h["shadow"]["version"] == "50.0.0-shadow" and "signature" in h["last_refused"]["reason"]
        page.close()


def test_page_shows_an_incomplete_note_as_its_own_milder_alert(browser, tmp_path):
    """A note without a year, through the real compliance bundle: the page shows an
    info-level "note incomplete" card naming what is missing, and the component as
    "Note incomplete" (neither compliant nor non-compliant)."""
    with InProcessAgent(agent_config(tmp_path)) as run:
        agent = run.agent
        page = browser.new_page(viewport={"width": 800, "height": 480})
        page.goto(run.url + "/")
        page.wait_for_selector("#chip-live.on", timeout=10_000)
        assert agent.components.apply_document({"vin": "TEST", "components": [
            {"component": "water pump", "note": "water pump, aluminium, good condition"}]}) == 1
        (alert,) = agent.alerts.list(active_only=True)
        assert alert["kind"] == "compliance_incomplete" and alert["severity"] == "info"
        card = page.locator(f'article.alert[data-id="{alert["id"]}"]')
        card.wait_for(timeout=10_000)
        assert "incomplete" in card.inner_text().lower() and "Not stated: year" in card.inner_text()
        assert "info" in card.get_attribute("class")
        li = page.locator('#components li[data-component="water pump"]')
        li.wait_for(timeout=10_000)
        assert li.locator(".verdict.incomplete").inner_text() == "Note incomplete"
        page.close()
