"""Agent footprint: time-to-ready, peak RSS with both models, CPU idle and on a 1,000 frames/s bus.

    python -m bench.bench_agent [--seconds 10] [--fps 1000] [--shadow]

A real `trey-agent run` process (shipped bundles, a component spec, HMI on loopback) reads a
udp_multicast bus fed from this process:
  ready    process start -> READY=1 on a real $NOTIFY_SOCKET (bus open, models loaded, HMI listening)
  idle     CPU % over a few seconds of silent bus
  realistic  1,000 frames/s of which ~4 % are the mapped battery/ignition/time frames (the
             virtual car, vehicle time advancing ~1 simulated day per 25 s) and the rest other
             ECUs' traffic (unmapped IDs the agent must drop cheaply)
  all-mapped 1,000 frames/s, every frame mapped (the virtual car at ~1 simulated day per
             second, so a day closes -> forecast -> alert rule about every second): worst case
peak RSS = VmHWM of the agent process at the end. Budgets (issue 5): RSS <= 90 MB,
ready <= 1.0 s, idle CPU ~0. --shadow: both slots also run a shadow model (the shipped
bundles installed as shadow releases, agent.model_slots); budget with shadows (issue 13):
peak RSS <= 100 MB. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _health(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as r:
        return json.load(r)


def _stream(group: str, port: int, fps: float, seconds: float, mapped_share: float, seed: int) -> int:
    """Send `fps` frames/s for `seconds`: mapped frames from the virtual car + other ECUs' IDs."""
    import can
    from can_sim import Simulator
    rng = random.Random(seed)
    sim = Simulator("aging", seed=seed, start=date(2024, 1, 1), days=400, battery_cycles=100.0)
    car = sim.frames()
    other_ids = [0x100 + 7 * i for i in range(60)]
    bus = can.Bus(interface="udp_multicast", channel=group, port=port)
    sent, t0 = 0, time.perf_counter()
    try:
        total = int(fps * seconds)
        for i in range(total):
            due = t0 + i / fps
            ahead = due - time.perf_counter()
            if ahead > 0.001:
                time.sleep(ahead)
            if rng.random() < mapped_share:
                _, msg = next(car)
            else:
                msg = can.Message(arbitration_id=rng.choice(other_ids), is_extended_id=False,
                                  data=rng.randbytes(8))
            bus.send(msg)
            sent += 1
    finally:
        bus.shutdown()
    return sent


def _install_shadows(state: Path) -> None:
    """Both shipped bundles as shadow releases in the state dir, as agent.model_slots keeps them."""
    import hashlib
    import shutil

    from agent.bundle import DEFAULT_BATTERY_BUNDLE, DEFAULT_COMPLIANCE_BUNDLE
    from export.bundle import DEV_SIGNING_KEY, tar_bundle
    from export.release import release_doc
    models = state / "models"
    models.mkdir(parents=True, exist_ok=True)
    for slot, src in (("battery", DEFAULT_BATTERY_BUNDLE), ("compliance", DEFAULT_COMPLIANCE_BUNDLE)):
        shutil.copytree(src, models / f"{slot}.shadow")
        manifest = json.loads((src / "manifest.json").read_text())
        rel = release_doc(slot, 1, tar_bundle(src), manifest, [DEV_SIGNING_KEY], shadow=True)
        (models / f"{slot}.shadow.release.json").write_text(json.dumps(rel["signed"]))
        assert rel["signed"]["target"]["sha256"] == hashlib.sha256(tar_bundle(src)).hexdigest()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="bench_agent")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=1000.0)
    ap.add_argument("--shadow", action="store_true", help="install a shadow model in both slots")
    args = ap.parse_args(argv if argv is not None else [])
    tmp = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    hmi_port, bus_port = _free_port(), _free_port()
    group = f"239.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"
    spec = tmp / "components.jsonl"
    spec.write_text(json.dumps({"vin": "BENCH", "components": [
        {"component": "alternator", "note": "manufactured in 1985 made of steel in fair condition"},
        {"component": "starter motor", "note": "manufactured in 2019 made of carbon fiber in new condition"}]}) + "\n")
    cfg = tmp / "agent.toml"
    cfg.write_text(f'[vehicle]\nid = "BENCH-1"\n[can]\ninterface = "udp_multicast"\nchannel = "{group}"\n'
                   f'port = {bus_port}\n[state]\ndir = "{tmp / "state"}"\n[hmi]\nlisten = "127.0.0.1:{hmi_port}"\n'
                   f'[components]\nspec = "{spec}"\n[log]\nlevel = "WARNING"\n')
    if args.shadow:
        _install_shadows(tmp / "state")
    sock_path = tmp / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(30)
    # Run the agent with the shipped unit's Environment= (as systemd does on the head unit).
    unit_env = {}
    for line in (ROOT / "systemd" / "trey-agent.service").read_text().splitlines():
        if line.startswith("Environment="):
            unit_env.update(item.partition("=")[::2] for item in line.split("=", 1)[1].split())
    print("agent environment (from systemd/trey-agent.service):", " ".join(f"{k}={v}" for k, v in unit_env.items()))
    # A head unit has the bytecode precompiled at install (README); this box may run with
    # PYTHONDONTWRITEBYTECODE: cache it privately and warm it with one start first.
    env = {**os.environ, **unit_env, "NOTIFY_SOCKET": str(sock_path),
           "PYTHONPYCACHEPREFIX": os.path.join(tempfile.gettempdir(), "trey-agent-pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    warm = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(cfg)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while b"READY=1" not in sock.recv(4096):
        pass
    warm.send_signal(signal.SIGTERM)
    warm.wait(10)
    time.sleep(0.2)
    try:
        while True:                      # drop the warm-up's remaining notifications
            sock.settimeout(0.05)
            sock.recv(4096)
    except OSError:
        sock.settimeout(30)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(cfg)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(tmp / "agent.log", "wb"))
    try:
        while b"READY=1" not in sock.recv(4096):
            pass
        ready_s = time.monotonic() - t0
        cpu_ready = _cpu_s(proc.pid)
        rss_ready = _status_kb(proc.pid, "VmRSS") / 1024
        load1 = os.getloadavg()[0]
        # Wall time depends on what else the machine runs; the CPU time the agent needed
        # to get ready does not (on an idle core, wall ~= CPU + a little I/O).
        print(f"time to ready (start -> READY=1): {ready_s:.2f} s wall, {cpu_ready:.2f} s CPU   "
              f"(budget 1.0 s; load average {load1:.1f} on {os.cpu_count()} cores)")
        print(f"RSS at ready: {rss_ready:.1f} MB")
        c0, w0 = _cpu_s(proc.pid), time.monotonic()
        time.sleep(5.0)
        print(f"idle CPU: {100 * (_cpu_s(proc.pid) - c0) / (time.monotonic() - w0):.2f} %, "
              f"RSS {_status_kb(proc.pid, 'VmRSS') / 1024:.1f} MB")
        for label, share in (("realistic (4% mapped)", 0.04), ("all-mapped (worst case)", 1.0)):
            f0 = _health(hmi_port)["bus"]["frames"]
            c0, w0 = _cpu_s(proc.pid), time.monotonic()
            sent = _stream(group, bus_port, args.fps, args.seconds, share, seed=7)
            time.sleep(0.5)
            wall = time.monotonic() - w0
            cpu = 100 * (_cpu_s(proc.pid) - c0) / wall
            got = _health(hmi_port)["bus"]["frames"] - f0
            print(f"{label}: {args.fps:.0f} frames/s for {args.seconds:.0f} s -> agent CPU {cpu:.1f} % of one core, "
                  f"{got}/{sent} frames received, RSS {_status_kb(proc.pid, 'VmRSS') / 1024:.1f} MB")
        h = _health(hmi_port)
        shadows = [(h["models"][s].get("shadow") or {}).get("version") for s in ("battery", "compliance")]
        print(f"peak RSS (VmHWM): {_status_kb(proc.pid, 'VmHWM') / 1024:.1f} MB   (budget "
              f"{'100 MB with shadows' if args.shadow else '90 MB'}, both models loaded: "
              f"{h['models']['battery']['version']}, {h['models']['compliance']['version']}"
              + (f"; shadows {shadows[0]}, {shadows[1]}" if args.shadow else "") + ")")
        if args.shadow:
            ev = h["models"]["battery"]["shadow"]["evaluation"]
            print(f"battery shadow evaluated on {ev['days']} days; MAE live {ev['mae']['live']}, "
                  f"shadow {ev['mae']['shadow']}")
        proc.send_signal(signal.SIGTERM)
        t_term = time.monotonic()
        rc = proc.wait(10)
        print(f"SIGTERM -> exit {rc} in {time.monotonic() - t_term:.2f} s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()


if __name__ == "__main__":
    main(sys.argv[1:])
