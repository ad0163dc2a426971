"""The fleet dashboard in a real headless Chromium: every view loads with the lake's numbers,
a filter changes the table (and the URL), a click drills into a vehicle whose chart holds its
history, a CSV download equals the JSON, a missing lake is a clear page, and nothing is fetched
from outside. Screenshots are kept under the test's tmp dir (and TREY_ARTIFACTS if set)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import shutil

import pytest

from tests.dashboard_support import get_json, serving, small_lake, table

pytestmark = pytest.mark.timeout(400)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    lake = small_lake(tmp_path_factory.mktemp("dashb") / "lake")
    with serving(lake) as (url, _):
        yield url, lake


def _loaded(page, view):
    page.wait_for_selector(f'#view[data-view="{view}"]:not([data-loading])', timeout=30_000)


def _kpi(page, name) -> int:
    return int(page.locator(f'[data-kpi="{name}"] .v').inner_text().replace(",", ""))


def _shot(page, tmp_path, name, shots):
    path = tmp_path / f"dashboard_{name}.png"
    page.screenshot(path=str(path), full_page=True)
    shots.append(path)


def test_views_filters_drill_down_and_csv(browser, site, tmp_path):
    url, lake = site
    shots = []
    page = browser.new_page(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))

    # overview: the numbers of the lake (read back here with pyarrow, not through the dashboard)
    page.goto(url + "/")
    _loaded(page, "overview")
    latest = {}
    for r in table(lake, "alerts"):
        k = (r["vehicle_id"], r["alert_id"])
        if k not in latest or r["revision"] > latest[k]["revision"]:
            latest[k] = r
    assert _kpi(page, "open_alerts") == sum(r["state"] != "cleared" for r in latest.values()) > 0
    assert _kpi(page, "vehicles") == len({r["vehicle_id"] for t in ("daily", "status") for r in table(lake, t)})
    assert page.evaluate("window.__charts['ch-alerts'].getOption().series.length") > 0
    _shot(page, tmp_path, "overview", shots)
    page.click('[data-seg="kind"] button[data-v="battery"]')
    page.wait_for_url("**kind=battery**")
    _loaded(page, "overview")
    assert _kpi(page, "open_alerts") == sum(r["state"] != "cleared" and r["kind"] == "battery" for r in latest.values())

    # battery risk: a filter changes the table and the URL (shareable)
    page.goto(url + "/?view=battery&within=30")
    _loaded(page, "battery")
    risk = page.locator('table[data-table="risk"]')
    n30 = int(risk.get_attribute("data-rows"))
    _, api30 = get_json(url + "/api/battery/risk?within=30")
    assert n30 == len(api30["tables"]["risk"]["rows"]) == _kpi(page, "eol_30d") > 0
    page.click('[data-seg="within"] button[data-v="90"]')
    page.wait_for_url("**within=90**")
    _loaded(page, "battery")
    n90 = int(page.locator('table[data-table="risk"]').get_attribute("data-rows"))
    assert n90 > n30 and n90 == _kpi(page, "eol_90d")
    # sorting by a header: server-side over the whole selection, in the URL
    page.click('table[data-table="risk"] th[data-col="lifetime_cycles"]')
    page.wait_for_url("**sort=lifetime_cycles**")
    _loaded(page, "battery")
    col = page.locator('table[data-table="risk"] tbody tr td:nth-child(4)').all_inner_texts()
    vals = [float(x.replace(",", "")) for x in col]
    assert vals == sorted(vals)
    _shot(page, tmp_path, "battery_risk", shots)

    # CSV export downloads the table's numbers (same as the JSON)
    with page.expect_download() as dl:
        page.click('a.csv[data-csv="risk"]')
    text = open(dl.value.path(), encoding="utf-8").read()
    rows = list(csv.reader(io.StringIO(text)))
    _, api = get_json(url + "/api/battery/risk?within=90&sort=lifetime_cycles&order=asc")
    assert rows[0] == api["tables"]["risk"]["columns"]
    assert [r[0] for r in rows[1:]] == [r[0] for r in api["tables"]["risk"]["rows"]]

    # click-through into a vehicle: its battery history and forecast are on the chart
    first = page.locator('table[data-table="risk"] tbody tr').first
    vid = first.get_attribute("data-vehicle")
    first.locator("td").nth(2).click()
    page.wait_for_url(f"**view=vehicle&id={vid}**")
    _loaded(page, "vehicle")
    assert page.locator("[data-vehicle-id]").inner_text() == vid
    daily = table(lake, "daily")
    until = max(r["Date"] for r in daily)
    days = sum(1 for r in daily if r["vehicle_id"] == vid and r["Date"] > until - dt.timedelta(days=365))
    series = page.evaluate("window.__charts['ch-life'].getOption().series.map(s => s.data.length)")
    assert series[0] == days > 0 and series[1] == 31          # forecast: as_of + 30 days
    assert int(page.locator('table[data-table="alerts"]').get_attribute("data-rows")) >= 1
    _shot(page, tmp_path, "vehicle", shots)

    # accuracy and compliance load with their numbers
    page.goto(url + "/?view=accuracy")
    _loaded(page, "accuracy")
    assert int(page.locator('table[data-table="by_model"]').get_attribute("data-rows")) == 2
    assert page.evaluate("window.__charts['ch-mae'].getOption().series.length") == 2
    _shot(page, tmp_path, "accuracy", shots)
    page.goto(url + "/?view=compliance")
    _loaded(page, "compliance")
    _, comp = get_json(url + "/api/compliance")
    assert _kpi(page, "non_compliant") == comp["summary"]["non_compliant"] > 0
    before = int(page.locator('table[data-table="components"]').get_attribute("data-rows"))
    page.click('[data-seg="cause"] button[data-v="material"]')
    page.wait_for_url("**cause=material**")
    _loaded(page, "compliance")
    after = int(page.locator('table[data-table="components"]').get_attribute("data-rows"))
    assert 0 < after < before
    assert all("material" in t for t in page.locator('table[data-table="components"] tbody tr td:nth-child(5)').all_inner_texts())
    _shot(page, tmp_path, "compliance", shots)

    # search box -> vehicle
    page.fill("#search-q", "V000003")
    page.press("#search-q", "Enter")
    page.wait_for_url("**id=V000003**")
    _loaded(page, "vehicle")
    assert page.locator("[data-vehicle-id]").inner_text() == "V000003"

    assert not errors, errors
    assert requests and all(u.startswith(url) for u in requests), [u for u in requests if not u.startswith(url)]
    page.close()
    artifacts = os.environ.get("TREY_ARTIFACTS")
    if artifacts:
        os.makedirs(artifacts, exist_ok=True)
        for s in shots:
            shutil.copy(s, artifacts)
    print("\ndashboard screenshots:", *shots)


def test_missing_lake_is_a_clear_page(browser, tmp_path):
    with serving(tmp_path / "no-lake-here") as (url, _):
        page = browser.new_page()
        page.goto(url + "/?view=battery")
        page.wait_for_selector("#banner:not([hidden])", timeout=30_000)
        text = page.locator("#banner").inner_text()
        assert "no lake at" in text and "--demo" in text
        page.close()
