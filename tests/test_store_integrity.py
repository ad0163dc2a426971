"""A damaged or unwritable state database (issue #10 item 5), against `trey-agent run`:
garbage / truncated / first-page-only state.db, state.db being a directory, a damaged
daily-table page and a WAL damaged after a kill are detected at start, the damaged file is
kept aside (named in the log), what can be read is recovered and the outcome is on
/api/health; an unwritable state directory is one line and exit code 3."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from agent.schema import DAILY_COLUMNS
from tests.conftest import ROOT
from tests.daemon_support import AGENT_ENV, agent_config, hmi_port, start_agent_process, stop_process, wait_ready

DAYS = 120


def _row(i: int) -> dict:
    r = {c: 0.0 for c in DAILY_COLUMNS}
    r.update(Date=(date(2024, 1, 1) + timedelta(days=i)).isoformat(), Battery_ID="B-1", Battery_Age_Days=i,
             Number_Of_Trips=2, Daily_Trip_Duration=40.0, Daily_Cycles_Used=0.5, Lifetime_Cycles_Used=0.5 * (i + 1),
             Battery_Rated_Cycles=200.0)
    return r


def _populate(state: Path, days: int = DAYS) -> None:
    """A state DB as the agent leaves it: closed days, alerts, a checkpoint, counters."""
    from agent.alerts import Alerts
    from agent.store import StateStore
    store = StateStore(state)
    alerts = Alerts(store)
    for i in range(days):
        store.store_daily_row(_row(i), counters={"frames": i})
    alerts.raise_or_update("compliance:V:alternator", "compliance", "warning", "Alternator", "m", {"why": ["1985"]})
    store.save_checkpoint({"note": "test checkpoint"}, key="test.checkpoint")
    store.close()


def _start(tmp_path: Path):
    cfg = agent_config(tmp_path)
    log = tmp_path / "agent.log"
    proc = start_agent_process(cfg, log_path=log)
    try:
        h = wait_ready(hmi_port(cfg), proc, log)
    except AssertionError:
        proc.kill()
        raise
    return proc, h, log


def _stored_days(state: Path) -> int:
    c = sqlite3.connect(state / "state.db")
    try:
        return c.execute("SELECT count(*) FROM daily").fetchone()[0]
    finally:
        c.close()


def _run_and_check(tmp_path: Path, expect_reason: str):
    proc, h, log = _start(tmp_path)
    try:
        db = h["state_db"]
        assert db["status"] == "recovered" and expect_reason in db["reason"], db
        aside = Path(db["kept_aside"])
        assert aside.exists() and aside.parent == tmp_path / "state"
        assert str(aside) in log.read_text()                      # named in the log
    finally:
        rc, _ = stop_process(proc)
    assert rc == 0 and "Traceback" not in log.read_text(), log.read_text()[-3000:]
    return db


def test_garbage_state_db(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "state.db").write_bytes(os.urandom(50_000))
    db = _run_and_check(tmp_path, "not an SQLite database")
    assert db["recovered_rows"] == {}
    assert _stored_days(state) == 0


@pytest.mark.parametrize("keep", ["cut-tail", "first-page"])
def test_truncated_state_db(tmp_path, keep):
    state = tmp_path / "state"
    _populate(state)
    p = state / "state.db"
    size = p.stat().st_size
    with open(p, "r+b") as fh:
        fh.truncate(size - 2 * 4096 if keep == "cut-tail" else 4096)
    db = _run_and_check(tmp_path, "")
    assert db["reason"], db
    days = _stored_days(state)
    assert days < DAYS
    if keep == "cut-tail":   # tables now point past the end (SQL sees nothing); days in intact pages come back
        assert days > 0 and db["recovered_rows"]["daily"] == days, db


def test_state_db_is_a_directory(tmp_path):
    state = tmp_path / "state"
    (state / "state.db").mkdir(parents=True)
    _run_and_check(tmp_path, "not a regular file")


def _daily_leaf_pages(p: Path) -> tuple[int, list[int]]:
    c = sqlite3.connect(p)
    try:
        size = c.execute("PRAGMA page_size").fetchone()[0]
        pages = [r[0] for r in c.execute("SELECT pageno FROM dbstat WHERE name='daily' AND pagetype='leaf'")]
    finally:
        c.close()
    return size, pages


def test_damaged_daily_page_is_detected_and_the_rest_recovered(tmp_path):
    state = tmp_path / "state"
    _populate(state)
    p = state / "state.db"
    size, leaves = _daily_leaf_pages(p)
    assert len(leaves) >= 3
    victim = leaves[len(leaves) // 2]
    with open(p, "r+b") as fh:                       # garbage over one page of closed days
        fh.seek((victim - 1) * size + 8)
        fh.write(os.urandom(size - 16))
    db = _run_and_check(tmp_path, "")
    days = _stored_days(state)
    assert 0 < days < DAYS and db["recovered_rows"]["daily"] == days, db
    assert db["recovered_rows"]["alerts"] == 1 and db["recovered_rows"]["kv"] >= 1
    # The recovered database takes new closed days (before: every day failed "malformed").
    from agent.store import StateStore
    store = StateStore(state)
    try:
        assert store.store_daily_row(_row(DAYS + 5))
        assert store.load_checkpoint("test.checkpoint") == {"note": "test checkpoint"}
        assert store.integrity["status"] == "ok" and store.integrity["last_recovery"]["status"] == "recovered"
    finally:
        store.close()


_KILLED_WRITER = """
import os, sys
sys.path.insert(0, sys.argv[2])
from tests.test_store_integrity import _row
from agent.store import StateStore
s = StateStore(sys.argv[1])
s._conn.execute("PRAGMA wal_autocheckpoint=0")      # all commits stay in the WAL
for i in range(29):
    s.store_daily_row(_row(i))
os._exit(0)                                          # like SIGKILL: no checkpoint, no close
"""


def test_wal_damaged_after_kill_is_reported(tmp_path):
    state = tmp_path / "state"
    subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(state), str(ROOT)], check=True, cwd=ROOT,
                   env=AGENT_ENV, timeout=60)
    wal = state / "state.db-wal"
    data = bytearray(wal.read_bytes())
    page = int.from_bytes(data[8:12], "big")
    frames = (len(data) - 32) // (24 + page)
    assert frames > 10
    off = 32 + (frames // 3) * (24 + page) + 24 + 100       # inside an early frame's page
    data[off] ^= 0xFF
    wal.write_bytes(bytes(data))
    db = _run_and_check(tmp_path, "write-ahead log damaged")
    assert db["wal_frames_lost"] > 0
    aside = Path(db["kept_aside"])
    assert (aside / "state.db-wal").exists() and (aside / "state.db").exists()


def _run_cmd(cfg, prefix=()):
    return subprocess.run([*prefix, sys.executable, "-m", "agent", "run", "--config", str(cfg)], cwd=ROOT,
                          env=AGENT_ENV, capture_output=True, text=True, timeout=60)


def test_unwritable_state_dir_is_one_line_and_exit_3(tmp_path):
    import shutil
    if shutil.which("setpriv") is None and os.geteuid() == 0:
        pytest.skip("running as root without setpriv: cannot make a directory unwritable")
    cfg = agent_config(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o500)
    # As root, drop the capability that overrides file permissions (a head unit runs as a
    # DynamicUser: the directory's mode is what counts).
    prefix = ("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--") if os.geteuid() == 0 else ()
    try:
        res = _run_cmd(cfg, prefix)
    finally:
        state.chmod(0o700)
    assert res.returncode == 3, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if "trey-agent run:" in ln]
    assert len(lines) == 1 and "not writable" in lines[0] and str(state) in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_state_dir_that_is_a_file_is_exit_3(tmp_path):
    cfg = agent_config(tmp_path)
    (tmp_path / "state").write_text("not a directory")
    res = _run_cmd(cfg)
    assert res.returncode == 3 and "state directory" in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_unit_does_not_restart_on_exit_3():
    unit = (ROOT / "systemd" / "trey-agent.service").read_text()
    prevent = [ln.split("=", 1)[1].split() for ln in unit.splitlines() if ln.startswith("RestartPreventExitStatus=")]
    assert prevent and "3" in prevent[0]


def test_recovery_is_shown_on_the_hmi_page(tmp_path):
    """The driver's page shows that the storage was recovered (real headless Chromium)."""
    if not os.path.exists("/usr/bin/chromium"):
        pytest.skip("/usr/bin/chromium missing (scripts/setup.sh full installs chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright not installed ('.[dev]')")
    from tests.daemon_support import InProcessAgent
    state = tmp_path / "state"
    state.mkdir()
    (state / "state.db").write_bytes(b"garbage" * 1000)
    with InProcessAgent(agent_config(tmp_path)) as run, sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium",
                              args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = b.new_page()
            page.goto(run.url + "/")
            chip = page.locator("#chip-store")
            chip.wait_for(state="visible", timeout=10_000)
            assert "Storage recovered" in chip.get_attribute("title")
            assert "not an SQLite database" in chip.get_attribute("title")
        finally:
            b.close()
