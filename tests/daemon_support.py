"""Shared helpers for the daemon/HMI/systemd tests (owner: daemon)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tests.conftest import ROOT, free_port



def unit_environment(unit: Path = ROOT / "systemd" / "trey-agent.service") -> dict[str, str]:
    """The Environment= of the shipped unit: agent processes in tests and benchmarks run
    the way systemd runs them on the head unit."""
    env: dict[str, str] = {}
    for line in unit.read_text().splitlines():
        if line.startswith("Environment="):
            for item in line.split("=", 1)[1].split():
                k, _, v = item.partition("=")
                env[k] = v
    return env


def deployed_env() -> dict[str, str]:
    """Environment for a real agent process: the unit's Environment=, with the compiled
    bytecode a head unit has (README: precompiled at install). This dev box runs with
    PYTHONDONTWRITEBYTECODE, so the bytecode goes to a private cache outside the repo
    instead of being recompiled from source at every start."""
    import tempfile
    env = {**os.environ, **unit_environment(),
           "PYTHONPYCACHEPREFIX": os.path.join(tempfile.gettempdir(), "trey-agent-pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


AGENT_ENV = deployed_env()

SPEC_NOTES = [
    ("alternator", "manufactured in 1985 made of steel in fair condition"),      # old + fair
    ("starter motor", "manufactured in 2019 made of carbon fiber in new condition"),
    ("door hinge", "manufactured in 2012 made of plastic in good condition"),     # plastic
    ("brake caliper", "manufactured in 2016 made of steel in good condition"),
]
NONCOMPLIANT = {"alternator", "door hinge"}


def write_spec(path: Path, vin: str = "WVWZZZ1JZXW000001", notes=SPEC_NOTES) -> Path:
    doc = {"vin": vin, "components": [{"component": c, "note": n} for c, n in notes]}
    path.write_text("# this car's component notes\n" + json.dumps(doc) + "\n")
    return path


def agent_config(tmp: Path, *, channel: str | None = None, interface: str = "virtual", port: int | None = None,
                 spec: Path | None = None, extra: str = "", battery: str = "", compliance: str = "",
                 can_port: int = 0) -> Path:
    channel = channel or f"t-{uuid.uuid4().hex[:8]}"
    port = free_port() if port is None else port
    lines = [
        "[vehicle]", 'id = "TEST-CAR-1"',
        "[can]", f'interface = "{interface}"', f'channel = "{channel}"', f"port = {can_port}",
        "[state]", f'dir = "{tmp / "state"}"',
        "[models]", f'battery = "{battery}"', f'compliance = "{compliance}"',
        "[hmi]", f'listen = "127.0.0.1:{port}"',
        "[components]", f'spec = "{spec or ""}"',
        extra,
    ]
    cfg = tmp / "agent.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 5.0):
    """(status, parsed JSON or text) without raising on 4xx/5xx."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        status, raw, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
    return status, (json.loads(raw) if ctype.startswith("application/json") else raw.decode())


def ack_headers(base_url: str) -> dict:
    """What the HMI page sends to acknowledge: JSON + this agent run's token (/api/session)."""
    status, session = http("GET", base_url.rstrip("/") + "/api/session")
    assert status == 200, session
    return {"Content-Type": "application/json", session["header"]: session["token"]}


class InProcessAgent:
    """The real Agent (agent.daemon) in a thread of the test process."""

    def __init__(self, cfg_path: Path):
        from agent.config import load_config
        from agent.daemon import Agent
        self.cfg = load_config(cfg_path)
        self.agent = Agent(self.cfg, install_signals=False)
        self.thread: threading.Thread | None = None

    def __enter__(self):
        self.agent.start()
        self.thread = threading.Thread(target=self.agent.run, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return self.agent.hmi.url.rstrip("/")

    def __exit__(self, *exc):
        self.agent.request_stop()
        self.thread.join(10)
        assert not self.thread.is_alive(), "agent main loop did not stop"


# `trey-agent run` exactly as the console script runs it, plus an atexit hook that writes the
# names of every module the process imported (the runtime import check reads it).
_RUN_WITH_MODULE_DUMP = (
    "import atexit, json, sys\n"
    "out = sys.argv.pop(1)\n"
    "atexit.register(lambda: open(out, 'w').write(json.dumps(sorted(sys.modules))))\n"
    "from agent.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def start_agent_process(cfg_path: Path, env: dict | None = None, log_path: Path | None = None,
                        modules_dump: Path | None = None) -> subprocess.Popen:
    """`trey-agent run --config` as a real process (stderr appended to log_path)."""
    err = open(log_path, "ab") if log_path else subprocess.DEVNULL
    cmd = [sys.executable, "-m", "agent", "run", "--config", str(cfg_path)]
    if modules_dump is not None:
        cmd = [sys.executable, "-c", _RUN_WITH_MODULE_DUMP, str(modules_dump), "run", "--config", str(cfg_path)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env or AGENT_ENV, stdout=subprocess.DEVNULL, stderr=err)


def hmi_port(cfg_path: Path) -> int:
    return int(cfg_path.read_text().split('listen = "127.0.0.1:')[1].split('"')[0])


def wait_ready(port: int, proc: subprocess.Popen, log_path: Path | None = None, timeout: float = 20.0) -> dict:
    """Poll /api/health until the agent answers ready (fails early if the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"agent exited {proc.returncode}: " + (log_path.read_text()[-3000:] if log_path else ""))
        try:
            status, h = http("GET", f"http://127.0.0.1:{port}/api/health", timeout=1)
            if status == 200 and h.get("ready"):
                return h
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("agent not ready: " + (log_path.read_text()[-3000:] if log_path else ""))


def stop_process(proc: subprocess.Popen, timeout: float = 5.0) -> tuple[int, float]:
    """SIGTERM -> (exit code, seconds to exit); kills if it overstays."""
    import signal
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -9, time.monotonic() - t0
    return rc, time.monotonic() - t0
