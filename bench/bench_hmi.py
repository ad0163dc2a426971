"""HMI serving: keep-alive vs fresh-connection latency, and latency while idle/slow clients
are held (issue #10 item 3).

    python -m bench.bench_hmi [--requests 300] [--idle 200] [--slow 50]

A real `trey-agent run` process (virtual bus, shipped bundles, HMI on loopback):
  fresh       one TCP connection per GET /api/alerts (what curl does)
  keep-alive  all requests on one HTTP/1.1 connection (what the page's fetch() does)
  held        the same keep-alive and fresh requests while `idle` connections that send
              nothing and `slow` ones that trickle an endless header are open
Also the agent's thread count and peak RSS. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _pcts(xs: list[float]) -> str:
    xs = sorted(xs)
    p = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))] * 1000   # noqa: E731
    return f"p50 {p(0.5):6.2f} ms  p95 {p(0.95):6.2f} ms  max {xs[-1] * 1000:6.2f} ms  mean {statistics.mean(xs) * 1000:6.2f} ms"


def _fresh(port: int, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/api/alerts")
        c.getresponse().read()
        c.close()
        out.append(time.perf_counter() - t0)
    return out


def _keepalive(port: int, n: int) -> list[float]:
    out = []
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(n):
        t0 = time.perf_counter()
        c.request("GET", "/api/alerts")
        c.getresponse().read()
        out.append(time.perf_counter() - t0)
    c.close()
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="bench_hmi")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--idle", type=int, default=200)
    ap.add_argument("--slow", type=int, default=50)
    args = ap.parse_args(argv if argv is not None else [])
    tmp = Path(tempfile.mkdtemp(prefix="bench-hmi-"))
    port = _free_port()
    cfg = tmp / "agent.toml"
    cfg.write_text(f'[vehicle]\nid = "BENCH-1"\n[can]\ninterface = "virtual"\nchannel = "bench-hmi"\n'
                   f'[state]\ndir = "{tmp / "state"}"\n[hmi]\nlisten = "127.0.0.1:{port}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(cfg)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=open(tmp / "agent.log", "wb"))
    held: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("agent did not start: " + (tmp / "agent.log").read_text()[-2000:])
                time.sleep(0.05)
        _keepalive(port, 20)                                  # warm-up
        threads0 = _status(proc.pid, "Threads")
        print(f"requests per case: {args.requests} (GET /api/alerts)")
        print(f"  fresh connection  {_pcts(_fresh(port, args.requests))}")
        print(f"  keep-alive        {_pcts(_keepalive(port, args.requests))}")
        for _ in range(args.idle):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        slow = []
        for _ in range(args.slow):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            slow.append(s)
        held += slow
        for s in slow:
            try:
                s.sendall(b"X")
            except OSError:
                pass
        print(f"with {args.idle} idle + {args.slow} slow connections held:")
        print(f"  fresh connection  {_pcts(_fresh(port, args.requests))}")
        print(f"  keep-alive        {_pcts(_keepalive(port, args.requests))}")
        h = __import__("json").loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5).read())
        print(f"agent threads: {threads0} before, {_status(proc.pid, 'Threads')} with the clients held; "
              f"peak RSS {_status(proc.pid, 'VmHWM') / 1024:.1f} MB; HMI counters {h['hmi']}")
    finally:
        for s in held:
            s.close()
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main(sys.argv[1:])
