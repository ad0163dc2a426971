"""`trey-agent forecast` on the SHIPPED bundle over a freshly generated fleet (raw, with
defects), fallbacks for short histories, malformed input, a tampered bundle."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from agent.bundle import DEFAULT_BATTERY_BUNDLE
from agent.forecast import BatteryForecaster


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True,
                          timeout=120, **kw)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    d = tmp_path_factory.mktemp("fleet")
    r = subprocess.run([sys.executable, "-m", "export.cli", "data", "battery", "--batteries", "25",
                        "--seed", "3", "--out", str(d)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    params = {str(b["battery_id"]): b for b in json.loads((d / "fleet_params.json").read_text())["batteries"]}
    return d, params


def test_forecast_command_on_generated_fleet(fleet):
    d, params = fleet
    r = _cli("forecast", str(d / "battery_history.csv"))
    assert r.returncode == 0, r.stderr
    answers = [json.loads(line) for line in r.stdout.splitlines()]
    assert sorted(a["battery_id"] for a in answers) == sorted(params)
    with open(d / "battery_history.csv", newline="") as fh:
        raw = list(csv.DictReader(fh))
    for a in answers:
        p = params[a["battery_id"]]
        f = np.array(a["forecast_daily_cycles"])
        assert f.shape == (30,) and (f >= 0).all() and (f < 3).all()
        assert a["rated_cycles"] == p["rated_cycles"]
        assert a["projected_lifetime_cycles_30d"] == pytest.approx(a["lifetime_cycles"] + f.sum(), abs=1e-3)
        assert a["alert"] == (a["projected_lifetime_cycles_30d"] >= a["rated_cycles"])
        if a["days_to_rated"] is not None:
            assert a["alert"] and 0 <= a["days_to_rated"] <= 30
        recent = a["explanation"]["recent_mean_daily_cycles"]
        assert 0.3 * recent < f.mean() < 3 * recent + 0.01       # in line with recent usage
        window = json.loads((DEFAULT_BATTERY_BUNDLE / "manifest.json").read_text())["preprocessing"]["window"]
        assert a["fallback"] == (None if a["history_days"] >= window else "padded_history")
        last = max(row["Date"][:10] for row in raw if row["Battery_ID"] == a["battery_id"])
        assert a["as_of"] == last
        if p["reached_end_of_life"]:
            # the history ends on the day the battery reached its rated cycles; the cleaned
            # lifetime is a running sum over interpolated gaps, so it may sit ~1 % either side
            assert a["alert"] and a["days_to_rated"] is not None
            assert a["lifetime_cycles"] == pytest.approx(a["rated_cycles"], rel=0.015)
        elif a["lifetime_cycles"] < a["rated_cycles"] - 30 * 3 * recent - 1:
            assert not a["alert"]
    assert any(a["alert"] for a in answers) and not all(a["alert"] for a in answers)


def test_short_histories_use_documented_fallbacks(fleet):
    d, _ = fleet
    with open(d / "battery_history.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if len(r["Date"]) == 10]     # daily part only
    fc = BatteryForecaster.default()
    first = rows[0]["Battery_ID"]
    mine = [r for r in rows if r["Battery_ID"] == first]
    seen = {}
    for n in (3, 12, 60):
        a = fc.forecast(mine[:n])
        seen[n] = a["fallback"]
        assert len(a["forecast_daily_cycles"]) == 30 and min(a["forecast_daily_cycles"]) >= 0
    assert seen == {3: "fleet_median", 12: "short_history_mean", 60: "padded_history"}
    # store-style rows (numbers, several batteries): the latest battery is forecast
    store_rows = [{k: (float(v) if k not in ("Date", "Battery_ID") else v) for k, v in r.items()}
                  for r in rows[:4000]]
    a = fc.forecast(store_rows)
    assert a["battery_id"] == max(store_rows, key=lambda r: r["Date"])["Battery_ID"]


def test_malformed_row_is_reported_with_its_line(tmp_path, fleet):
    d, _ = fleet
    lines = (d / "battery_history.csv").read_text().splitlines()[:50]
    cols = lines[9].split(",")
    cols[5] = "zero point one"
    lines[9] = ",".join(cols)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    r = _cli("forecast", str(bad))
    assert r.returncode == 2 and "line 10" in r.stderr and "Daily_Cycles_Used" in r.stderr


def test_tampered_bundle_is_refused_by_the_command(tmp_path, fleet):
    d, _ = fleet
    b = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BATTERY_BUNDLE, b)
    m = json.loads((b / "manifest.json").read_text())
    m["fleet_norm"]["median_daily_cycles"] = 9.0
    (b / "manifest.json").write_text(json.dumps(m))
    r = _cli("forecast", "--bundle", str(b), str(d / "battery_history.csv"))
    assert r.returncode == 3 and "refused" in r.stderr and r.stdout == ""


def test_output_piped_into_head_ends_quietly(fleet, tmp_path):
    """`trey-agent forecast ... | head -1`: the closed pipe is not an error. The fleet is
    copied under new ids so the output is larger than the pipe's buffer."""
    d, _ = fleet
    header, *body = (d / "battery_history.csv").read_text().splitlines()
    big = tmp_path / "big.csv"
    with open(big, "w") as fh:
        fh.write(header + "\n")
        for copy in range(8):
            fh.writelines(f"{line.replace(',1000', f',{copy}000', 1)}\n" for line in body)
    p = subprocess.Popen([sys.executable, "-m", "agent.cli", "forecast", str(big)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    first = p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 0 and "Traceback" not in err, err
    assert json.loads(first)["battery_id"]
