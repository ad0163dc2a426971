"""Soak: the agent under every attack of issue #10 at once, with kills. `make soak`.

    python -m bench.soak [--seconds 180] [--kills 20] [--fps 250] [--no-bombs] [--no-glitch]

A real `trey-agent run` process (both shipped bundles, a component spec, HMI, MQTT to a
private mosquitto) fed by the virtual car over udp_multicast (~1 simulated day per 4 s at
250 frames/s), while:
  - a hostile MQTT client floods the downlink: oversized (8 MB, above the agent's Maximum
    Packet Size), compressed-bomb model announcements (gzip / bzip2 of 256 MB of zeros,
    retained), malformed JSON, retained junk on .../components and on 30 bogus model chunk
    topics, valid-but-bogus component documents (a new VIN each) and acks of unknown alerts;
  - 200 idle and 50 slow (trickled header) HTTP connections are held (re-opened as the
    agent drops them or restarts);
  - the vehicle-clock frame glitches (GW_VehicleTime = 0xFFFFFFFF) now and then;
  - the agent is SIGKILLed and restarted `--kills` times.
Every second the driver's page is loaded (/, app.js, app.css, /api/health, alerts, battery,
components on one connection) and timed. Checked and printed at the end:
  page load ≤ 1 s at every sample; no closed day lost (a stored day never disappears, no gap
  between the first and last day); no alert lost (every alert id seen is still there);
  peak RSS (VmHWM) ≤ 120 MB in every process life; every downlink message delivered in the
  final counting round is counted as applied or rejected.
Exit status 0 if every check holds, 1 otherwise (the figures say which).
"""

from __future__ import annotations

import argparse
import base64
import bz2
import gzip
import http.client
import io
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VID = "SOAK-1"
VIN = "WVWZZZ1JZXW000001"
SLOW: list = []       # per-request times of page loads over 0.5 s (printed)
PAGE = ["/", "/static/app.js", "/static/app.css", "/api/health", "/api/alerts", "/api/battery", "/api/components"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _get(port: int, path: str, timeout: float = 5.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def _health(port: int) -> dict | None:
    try:
        status, body = _get(port, "/api/health", 2.0)
        return json.loads(body) if status == 200 else None
    except (OSError, ValueError):
        return None


def _page_load(port: int) -> float | str:
    """Seconds to load everything the driver's page loads (one keep-alive connection), or
    what went wrong."""
    t0 = time.perf_counter()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        steps = []
        for p in PAGE:
            t1 = time.perf_counter()
            c.request("GET", p)
            r = c.getresponse()
            r.read()
            steps.append((p, round((time.perf_counter() - t1) * 1000)))
            if r.status != 200:
                return f"{p}: HTTP {r.status}"
        c.close()
        if time.perf_counter() - t0 > 0.5:
            SLOW.append(steps)
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- the car
class Car(threading.Thread):
    def __init__(self, group: str, port: int, fps: float, glitch: bool, stop: threading.Event):
        super().__init__(daemon=True, name="car")
        self.group, self.port, self.fps, self.glitch, self.stop_ev = group, port, fps, glitch, stop
        self.sent = self.glitches = 0
        self.vehicle_time = 0.0

    def run(self) -> None:
        import can
        import cantools

        from can_sim import Simulator
        db = cantools.database.load_file(str(ROOT / "agent" / "data" / "trey_vehicle.dbc"))
        clock = db.get_message_by_name("GW_VehicleTime")
        bad = can.Message(arbitration_id=clock.frame_id, is_extended_id=False,
                          data=clock.encode({"VehicleTimeUTC": 0xFFFFFFFF}))
        sim = Simulator("aging", seed=11, start=date(2024, 1, 1), days=2000, battery_cycles=100.0)
        frames = sim.frames()
        bus = can.Bus(interface="udp_multicast", channel=self.group, port=self.port)
        t0 = time.perf_counter()
        next_glitch = t0 + 20
        try:
            while not self.stop_ev.is_set():
                due = t0 + self.sent / self.fps
                ahead = due - time.perf_counter()
                if ahead > 0.001:
                    time.sleep(ahead)
                t, msg = next(frames)
                self.vehicle_time = t
                bus.send(msg)
                self.sent += 1
                if self.glitch and time.perf_counter() > next_glitch:
                    bus.send(bad)
                    self.glitches += 1
                    next_glitch = time.perf_counter() + 25
        finally:
            bus.shutdown()


# ----------------------------------------------------------------------------- hostile cloud
def _bomb_tar(kind: str, mb: int) -> bytes:
    """A bundle-shaped tar whose model.onnx is `mb` MB of zeros, gzip- or bzip2-compressed
    (a few hundred kB on the wire)."""
    import tarfile
    zeros = b"\0" * (mb * 1024 * 1024)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("manifest.json", b"{}"), ("manifest.sig", b"x" * 88), ("model.onnx", zeros)):
            info = tarfile.TarInfo(f"bundle/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip.compress(raw, compresslevel=9) if kind == "gz" else bz2.compress(raw, 9)


class Hostile(threading.Thread):
    """Floods the downlink; `sent` counts what the agent can receive (below its packet size)."""

    def __init__(self, host: str, port: int, bombs: bool, stop: threading.Event):
        super().__init__(daemon=True, name="hostile")
        import paho.mqtt.client as mqtt
        self.stop_ev, self.bombs = stop, bombs
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hostile", protocol=mqtt.MQTTv5)
        self.c.max_inflight_messages_set(200)
        self.c.connect(host, port)
        self.c.loop_start()
        self.sent: dict[str, int] = {}
        self.rng = random.Random(5)

    def pub(self, kind: str, topic: str, payload: bytes, retain: bool = False) -> None:
        self.c.publish(topic, payload, qos=1, retain=retain)
        self.sent[kind] = self.sent.get(kind, 0) + 1

    def retained_once(self) -> None:
        from agent import topics as T
        self.pub("retained_junk", T.components_topic(VID), b'{"schema": 1, "junk": true}', retain=True)
        for i in range(30):                          # bogus model names, retained chunks
            self.pub("retained_chunks", f"trey/v1/fleet/models/bogus{i}/chunks/0", json.dumps(
                {"schema": 1, "msg_id": "%032x" % i, "name": f"bogus{i}", "sha256": "0" * 64, "index": 0,
                 "data": base64.b64encode(os.urandom(64 * 1024)).decode()}).encode(), retain=True)
        if self.bombs:
            for name, kind in (("battery", "gz"), ("compliance", "bz2")):
                tar = _bomb_tar(kind, 256)
                ann = T.model_announcement(name, "6.6.6", tar, base64.b64encode(b"x" * 64).decode())
                self.pub("bomb", T.model_topic(name), T.encode(ann), retain=True)

    def burst(self) -> None:
        from agent import topics as T
        rng = self.rng
        for _ in range(20):
            r = rng.random()
            if r < 0.4:
                doc = {"vin": f"BOGUS{rng.randrange(10 ** 9):09d}", "components": [
                    {"component": "alternator", "note": "manufactured in 1985 made of steel in fair condition"}]}
                self.pub("bogus_components", T.components_topic(VID), T.encode(T.components_message(VID, doc)))
            elif r < 0.6:
                self.pub("malformed", T.components_topic(VID), rng.randbytes(rng.randint(1, 300)))
            elif r < 0.75:
                self.pub("bogus_ack", T.ack_topic(VID), T.encode(T.ack_message(VID, 10 ** 6 + rng.randrange(1000))))
            elif r < 0.85:
                self.pub("hostile_names", T.components_topic(VID), T.encode(T.components_message(
                    VID, {"vin": VIN, "components": [{"component": "../../etc/passwd", "note": "steel"}]})))
            else:
                self.c.publish(T.components_topic(VID), b"{" + b" " * (8 * 1024 * 1024) + b"}", qos=1)
                self.sent["oversized_dropped_by_broker"] = self.sent.get("oversized_dropped_by_broker", 0) + 1

    def run(self) -> None:
        self.retained_once()
        while not self.stop_ev.wait(0.5):
            self.burst()

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


# ----------------------------------------------------------------------------- hostile HTTP
class Hogs(threading.Thread):
    """Keeps `idle` silent and `slow` trickling connections open against the HMI."""

    def __init__(self, port: int, idle: int, slow: int, stop: threading.Event):
        super().__init__(daemon=True, name="hogs")
        self.port, self.idle, self.slow, self.stop_ev = port, idle, slow, stop
        self.idle_socks: list[socket.socket] = []
        self.slow_socks: list[socket.socket] = []
        self.opened = 0

    def _open(self, slow: bool):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=1)
            s.setblocking(False)
            if slow:
                s.send(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            self.opened += 1
            return s
        except OSError:
            return None

    @staticmethod
    def _alive(s) -> bool:
        try:
            return s.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False

    def run(self) -> None:
        while not self.stop_ev.wait(1.0):
            for group, want, slow in ((self.idle_socks, self.idle, False), (self.slow_socks, self.slow, True)):
                keep = []
                for s in group:
                    if self._alive(s):
                        keep.append(s)
                    else:
                        s.close()
                group[:] = keep
                while len(group) < want:
                    s = self._open(slow)
                    if s is None:
                        break
                    group.append(s)
            for s in self.slow_socks:
                try:
                    s.send(b"X")
                except OSError:
                    pass

    @property
    def held(self) -> tuple[int, int]:
        return len(self.idle_socks), len(self.slow_socks)

    def close(self) -> None:
        for s in self.idle_socks + self.slow_socks:
            s.close()


# ----------------------------------------------------------------------------- the soak
def _mosquitto(tmp: Path, port: int) -> subprocess.Popen:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"log_dest file {tmp / 'mosquitto.log'}\nmax_queued_messages 100000\n")
    p = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


def _stored(db: Path) -> set:
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
        try:
            return set(c.execute('SELECT "Battery_ID", "Date" FROM daily').fetchall())
        finally:
            c.close()
    except sqlite3.Error:
        return set()


def _alert_ids(port: int) -> set:
    try:
        status, body = _get(port, "/api/alerts", 2.0)
        return {a["id"] for a in json.loads(body)} if status == 200 else set()
    except (OSError, ValueError):
        return set()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="soak")
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--fps", type=float, default=250.0)
    ap.add_argument("--no-bombs", action="store_true", help="skip the compressed-bomb model announcements")
    ap.add_argument("--no-glitch", action="store_true", help="skip the vehicle-clock glitch frames")
    args = ap.parse_args(argv if argv is not None else [])
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    hmi_port, bus_port, mqtt_port = _free_port(), _free_port(), _free_port()
    group = f"239.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"
    spec = tmp / "components.jsonl"
    spec.write_text(json.dumps({"vin": VIN, "components": [
        {"component": "alternator", "note": "manufactured in 1985 made of steel in fair condition"},
        {"component": "door hinge", "note": "manufactured in 2012 made of plastic in good condition"},
        {"component": "starter motor", "note": "manufactured in 2019 made of carbon fiber in new condition"}]}) + "\n")
    cfg = tmp / "agent.toml"
    cfg.write_text(f'[vehicle]\nid = "{VID}"\n[can]\ninterface = "udp_multicast"\nchannel = "{group}"\n'
                   f'port = {bus_port}\n[state]\ndir = "{tmp / "state"}"\n[hmi]\nlisten = "127.0.0.1:{hmi_port}"\n'
                   f'[components]\nspec = "{spec}"\n[log]\nlevel = "WARNING"\n'
                   f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n')
    unit_env = {}
    for line in (ROOT / "systemd" / "trey-agent.service").read_text().splitlines():
        if line.startswith("Environment="):
            unit_env.update(item.partition("=")[::2] for item in line.split("=", 1)[1].split())
    env = {**os.environ, **unit_env, "PYTHONPYCACHEPREFIX": os.path.join(tempfile.gettempdir(), "trey-agent-pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    log = open(tmp / "agent.log", "ab")
    broker = _mosquitto(tmp, mqtt_port)
    stop = threading.Event()
    print(f"soak: {args.seconds:.0f} s, {args.kills} SIGKILLs, car {args.fps:.0f} frames/s, "
          f"bombs {'off' if args.no_bombs else 'on'}, clock glitch {'off' if args.no_glitch else 'on'}; "
          f"work dir {tmp}", flush=True)

    def start_agent():
        p = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(cfg)], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=log)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            h = _health(hmi_port)
            if h and h.get("ready"):
                return p, time.monotonic() - t0
            if p.poll() is not None:
                raise SystemExit(f"agent exited {p.returncode}; see {tmp / 'agent.log'}")
            time.sleep(0.05)
        raise SystemExit("agent not ready in 60 s")

    proc, ready_s = start_agent()
    lives = [{"ready_s": ready_s}]
    car = Car(group, bus_port, args.fps, not args.no_glitch, stop)
    hostile = Hostile("127.0.0.1", mqtt_port, not args.no_bombs, stop)
    hogs = Hogs(hmi_port, 200, 50, stop)
    for t in (car, hostile, hogs):
        t.start()
    samples: list[float] = []
    failed_samples = 0
    failures: dict[str, int] = {}
    seen_days: set = set()
    lost_days: set = set()
    seen_alerts: set = set()
    rss_peaks: list[int] = []
    t_end = time.monotonic() + args.seconds
    kill_every = args.seconds / (args.kills + 1)
    next_kill = time.monotonic() + kill_every
    kills = 0
    rejected_total: dict[str, int] = {}
    try:
        while time.monotonic() < t_end or kills < args.kills:
            time.sleep(1.0)
            took = _page_load(hmi_port)
            if isinstance(took, str):
                failed_samples += 1
                failures[took] = failures.get(took, 0) + 1
            else:
                samples.append(took)
            days = _stored(tmp / "state" / "state.db")
            lost_days |= seen_days - days
            seen_days |= days
            seen_alerts |= _alert_ids(hmi_port)
            if kills < args.kills and time.monotonic() >= next_kill:
                h = _health(hmi_port) or {}
                for k, v in (h.get("mqtt", {}).get("downlink_rejected") or {}).items():
                    rejected_total[k] = rejected_total.get(k, 0) + v
                rss_peaks.append(_status_kb(proc.pid, "VmHWM"))
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                proc, ready_s = start_agent()
                lives.append({"ready_s": ready_s})
                next_kill = time.monotonic() + kill_every
        # Final counting round: a known number of deliverable hostile messages, once the
        # flood has stopped and what it had in flight has been counted.
        stop.set()

        def handled() -> int:
            m = (_health(hmi_port) or {}).get("mqtt", {})
            return sum((m.get("downlink_rejected") or {}).values()) + sum((m.get("downlink_applied") or {}).values())
        before, settle, stable = handled(), time.monotonic() + 60, 0
        while time.monotonic() < settle and stable < 3:     # 3 s without a new count
            time.sleep(1.0)
            now = handled()
            stable = stable + 1 if now == before else 0
            before = now
        from agent import topics as T
        import paho.mqtt.client as mqtt
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="counter", protocol=mqtt.MQTTv5)
        c.connect("127.0.0.1", mqtt_port)
        c.loop_start()
        n_count = 100
        for i in range(n_count):
            payload = random.Random(i).randbytes(50) if i % 2 else T.encode(T.ack_message(VID, 10 ** 7 + i))
            info = c.publish(T.components_topic(VID) if i % 2 else T.ack_topic(VID), payload, qos=1)
            time.sleep(0.06)                 # under the per-kind rate limit: counted one by one
        info.wait_for_publish(10)
        deadline = time.monotonic() + 20
        counted = 0
        while time.monotonic() < deadline:
            counted = handled() - before
            if counted >= n_count:
                time.sleep(1.0)            # nothing more may arrive: exactly n_count
                counted = handled() - before
                break
            time.sleep(0.2)
        c.loop_stop()
        c.disconnect()
        h = _health(hmi_port) or {}
        for k, v in (h.get("mqtt", {}).get("downlink_rejected") or {}).items():
            rejected_total[k] = rejected_total.get(k, 0) + v
        rss_peaks.append(_status_kb(proc.pid, "VmHWM"))
        final_alerts = _alert_ids(hmi_port)
        comps = json.loads(_get(hmi_port, "/api/components")[1])
    finally:
        stop.set()
        hogs.close()
        try:
            hostile.close()
        except Exception:
            pass
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = -9
        broker.terminate()
        broker.wait(5)
    days = _stored(tmp / "state" / "state.db")
    lost_days |= seen_days - days
    dates = sorted(date.fromisoformat(d) for _, d in days)
    gaps = 0
    if dates:
        span = (dates[-1] - dates[0]).days + 1
        gaps = span - len(set(dates))
    lost_alerts = seen_alerts - final_alerts
    # Days the car drove through (all but the one still open) must all be closed and stored.
    from datetime import datetime, timezone
    car_day = datetime.fromtimestamp(car.vehicle_time, timezone.utc).date() if car.vehicle_time else None
    behind = (car_day - dates[-1]).days - 1 if (car_day and dates) else None
    max_page = max(samples) if samples else float("nan")
    ok = {
        "page ≤ 1 s at every sample": bool(samples) and max_page <= 1.0 and failed_samples == 0,
        "no closed day lost": not lost_days and gaps == 0 and bool(days),
        "every day driven is closed": behind is not None and behind <= 1,
        "no alert lost": not lost_alerts,
        "peak RSS ≤ 120 MB every life": max(rss_peaks) <= 120 * 1024,
        "every delivered input counted": counted == n_count,
        "clean stop": rc == 0,
    }
    srt = sorted(samples)
    print(f"kills/restarts: {kills}; time to ready after a kill: "
          f"{min(x['ready_s'] for x in lives):.2f}-{max(x['ready_s'] for x in lives):.2f} s")
    print(f"driver's page (7 requests, keep-alive): {len(samples)} samples, p50 {srt[len(srt) // 2] * 1000:.0f} ms, "
          f"max {max_page * 1000:.0f} ms, failed {failed_samples} {failures or ''}" if samples else "no page samples")
    print(f"car: {car.sent} frames, {car.glitches} clock glitches; closed days stored {len(days)} "
          f"({dates[0] if dates else '-'} .. {dates[-1] if dates else '-'}), gaps {gaps}, lost {len(lost_days)}; "
          f"car at {car_day}, days not closed {behind}")
    print(f"alerts seen {len(seen_alerts)}, lost {len(lost_alerts)}; components listed {len(comps)} "
          f"from {len({c['vin'] for c in comps})} VINs")
    print(f"peak RSS per life (MB): {', '.join(f'{x / 1024:.0f}' for x in rss_peaks)}")
    print(f"hostile sent: {hostile.sent}")
    print(f"agent rejected (summed over lives): {dict(sorted(rejected_total.items()))}")
    print(f"final counting round: {n_count} delivered, {counted} counted")
    if SLOW:
        print(f"slow page loads (ms per request): {SLOW[:5]}")
    print(f"HTTP hogs opened {hogs.opened} connections over the run")
    for k, v in ok.items():
        print(f"  [{'ok' if v else 'FAIL'}] {k}")
    print(f"work dir kept: {tmp}")
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
