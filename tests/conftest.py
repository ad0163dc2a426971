"""Shared test fixtures: real services started per test, cleaned up after."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll pred() until it returns something truthy (returned) or fail after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


class Broker:
    """A private mosquitto on a free port; stop()/start() to simulate outages.

    `extra_conf` lines are appended to the generated config (e.g. TLS listeners).
    """

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "", listener: bool = True):
        if MOSQUITTO is None:
            pytest.skip("mosquitto not installed (apt-get install -y mosquitto)")
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf = self.workdir / "mosquitto.conf"
        lines = []
        if listener:
            lines += [f"listener {self.port} 127.0.0.1", "allow_anonymous true"]
        lines += ["persistence false", f"log_dest file {self.workdir / 'mosquitto.log'}",
                  "max_queued_messages 100000", extra_conf]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Broker":
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture
def make_broker(tmp_path):
    """Factory for several brokers / custom configs; all stopped at teardown."""
    made: list[Broker] = []

    def _make(name: str = "broker", **kw) -> Broker:
        b = Broker(tmp_path / name, **kw)
        made.append(b)
        return b

    yield _make
    for b in made:
        b.stop()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser():
    """A real headless Chromium (Playwright driving the Debian build), one per test module."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} missing (scripts/setup.sh full installs chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright not installed ('.[dev]')")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def spark():
    """One embedded Spark (local[2]) for the whole test session (~7 s to start)."""
    from tests.spark_support import start_spark
    s = start_spark()
    yield s
    s.stop()
