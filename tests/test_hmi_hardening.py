"""The HMI under attack (issue #10 items 2, 3, 7): raw sockets against a real agent.

- an error response never leaves unread bytes to be parsed as a new request (413/421
  request smuggling past the Origin/Host guards);
- acknowledging needs JSON + this run's token;
- malformed request parts (`Content-Length: ²`, a raw non-ASCII path, HEAD of the event
  stream) get a clean answer;
- 200 idle + 50 slowloris connections cost no thread and /api/health still answers, in a
  real `trey-agent run` process (the thread count is what the unit's TasksMax must cover);
- the oldest event stream is evicted for a new one (the driver's page is never refused).
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.conftest import wait_until
from tests.daemon_support import (InProcessAgent, ack_headers, agent_config, hmi_port, http, start_agent_process,
                                  stop_process, wait_ready)


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hmi-hard")
    with InProcessAgent(agent_config(tmp)) as a:
        yield a


def _raise(agent, key="battery:B-SMUGGLE"):
    agent.alerts.clear(key)
    alert, _ = agent.alerts.raise_or_update(key, "battery", "warning", "Battery service needed",
                                            "Battery expected to reach end of life in about 5 days",
                                            {"days_to_rated": 5}, vehicle_date="2024-05-01")
    return alert


def _addr(run):
    from urllib.parse import urlsplit
    u = urlsplit(run.url)
    return u.hostname, u.port


def _exchange(addr, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes (or timeout) -> everything received."""
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except socket.timeout:
            pass
    return b"".join(chunks)


def _statuses(raw: bytes) -> list[int]:
    import re
    return [int(m) for m in re.findall(rb"HTTP/1\.1 ([0-9]{3}) ", raw)]


def _smuggled(host: str, alert_id: int, extra: str = "") -> bytes:
    # What a hostile page put in the body: a complete acknowledgement without an Origin.
    body = b'{"by": "smuggler"}'
    return (f"POST /api/alerts/{alert_id}/ack HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body


def test_413_does_not_parse_the_unread_body_as_a_request(running):
    a = _raise(running.agent)
    host, port = _addr(running)
    inner = _smuggled(f"{host}:{port}", a["id"])
    body = inner + b" " * (5000 - len(inner))          # > 4 KiB: refused unread
    outer = (f"POST /api/alerts/{a['id']}/ack HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: text/plain\r\n"
             f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    raw = _exchange((host, port), outer)
    assert _statuses(raw) == [413], raw[:400]               # one answer, then the connection is closed
    assert b"Connection: close" in raw
    assert running.agent.alerts.get(a["id"])["state"] == "raised"


def test_421_reads_the_body_and_closes(running):
    a = _raise(running.agent)
    host, port = _addr(running)
    inner = _smuggled(f"{host}:{port}", a["id"])
    outer = (f"POST /api/alerts/{a['id']}/ack HTTP/1.1\r\nHost: rebound.example:{port}\r\n"
             f"Content-Type: text/plain\r\nContent-Length: {len(inner)}\r\n\r\n").encode() + inner
    raw = _exchange((host, port), outer)
    assert _statuses(raw) == [421], raw[:400]
    assert running.agent.alerts.get(a["id"])["state"] == "raised"


def test_pipelined_requests_after_an_error_are_not_smuggled(running):
    """A 404 with a fully read body keeps the connection (keep-alive), the next request is
    parsed where the body ended — and without the token it acknowledges nothing."""
    a = _raise(running.agent)
    host, port = _addr(running)
    first = (f"POST /nothing HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 3\r\n\r\nabc").encode()
    raw = _exchange((host, port), first + _smuggled(f"{host}:{port}", a["id"], "Connection: close\r\n"))
    assert _statuses(raw) == [404, 403], raw[:600]
    assert running.agent.alerts.get(a["id"])["state"] == "raised"


def test_ack_needs_the_token_and_json(running):
    a = _raise(running.agent)
    url = f"{running.url}/api/alerts/{a['id']}/ack"
    assert http("POST", url, b'{"by": "x"}', {"Content-Type": "application/json"})[0] == 403
    assert http("POST", url, b'{"by": "x"}', {"Content-Type": "text/plain", **{
        k: v for k, v in ack_headers(running.url).items() if k != "Content-Type"}})[0] == 415
    h = ack_headers(running.url)
    assert http("POST", url, b'{"by": "x"}', {**h, "X-Trey-Token": "0" * 32})[0] == 403
    assert running.agent.alerts.get(a["id"])["state"] == "raised"
    status, acked = http("POST", url, b'{"by": "driver"}', h)
    assert status == 200 and acked["state"] == "acknowledged"


@pytest.mark.parametrize("raw,expect", [
    (b"POST /api/alerts/1/ack HTTP/1.1\r\nHost: {h}\r\nContent-Length: \xc2\xb2\r\n\r\n", 400),
    (b"GET /api/alerts/\xc2\xb2 HTTP/1.1\r\nHost: {h}\r\n\r\n", 400),
    (b"GET /api/health HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
    (b"GET /api/health HTTP/1.1\r\nHost: {h}\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    (b"GET /api/health HTTP/2.0\r\nHost: {h}\r\n\r\n", 505),
    (b"GET /api/health HTTP/1.1\r\nHost: {h}\r\n" + b"X-Pad: " + b"a" * 9000 + b"\r\n\r\n", 431),
    (b"GET /api/health HTTP/1.1\r\nHost: {h}\r\n folded\r\n\r\n", 400),
], ids=["content-length-superscript", "non-ascii-path", "chunked", "two-lengths", "http2", "huge-head", "folded"])
def test_malformed_request_parts_get_a_json_error(running, raw, expect):
    host, port = _addr(running)
    got = _exchange((host, port), raw.replace(b"{h}", f"{host}:{port}".encode()))
    assert _statuses(got) == [expect], got[:300]
    body = got.split(b"\r\n\r\n", 1)[1]
    assert json.loads(body)["status"] == expect and b"Traceback" not in got
    assert http("GET", running.url + "/api/health")[0] == 200


def test_head_of_event_stream_has_no_body(running):
    host, port = _addr(running)
    got = _exchange((host, port), f"HEAD /api/events HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head, _, body = got.partition(b"\r\n\r\n")
    assert _statuses(head) == [200] and b"text/event-stream" in head and body == b""


def test_keep_alive_serves_many_requests_on_one_connection(running):
    from http.client import HTTPConnection
    host, port = _addr(running)
    conn = HTTPConnection(host, port, timeout=5)
    for _ in range(20):
        conn.request("GET", "/api/alerts")
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("Connection") == "keep-alive"
        r.read()
    conn.close()


def test_oldest_event_stream_is_evicted_for_a_new_one(running):
    from http.client import HTTPConnection
    host, port = _addr(running)
    hub = running.agent.hmi.events
    streams = []
    for _ in range(hub.max_clients):
        c = HTTPConnection(host, port, timeout=10)
        c.request("GET", "/api/events")
        r = c.getresponse()
        assert r.status == 200
        streams.append((c, r))
    wait_until(lambda: hub.clients == hub.max_clients, 5, what="all streams subscribed")
    evicted_before = hub.evicted
    driver = HTTPConnection(host, port, timeout=10)
    driver.request("GET", "/api/events")
    resp = driver.getresponse()
    assert resp.status == 200                                  # never 503 for the driver's page
    wait_until(lambda: hub.evicted == evicted_before + 1, 5, what="oldest stream evicted")
    oldest = streams[0][1]
    oldest.fp.raw._sock.settimeout(5)
    data = oldest.read()                                       # ends: the server closed it
    assert b"event: health" in data
    for c, _ in streams + [(driver, None)]:
        c.close()


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return int(next(line.split()[1] for line in fh if line.startswith("Threads:")))


def test_idle_and_slow_clients_cost_no_thread_real_process(tmp_path):
    """200 idle + 50 slowloris connections against `trey-agent run` limited to 128
    connections: the health API still answers (the oldest waiting ones are evicted), and
    the process's thread count does not grow."""
    cfg = agent_config(tmp_path)
    cfg.write_text(cfg.read_text().replace("[hmi]\n", "[hmi]\nmax_connections = 128\nmax_connections_per_client = 96\n"))
    log = tmp_path / "agent.log"
    proc = start_agent_process(cfg, log_path=log)
    port = hmi_port(cfg)
    held: list[socket.socket] = []
    try:
        wait_ready(port, proc, log)
        base = _threads(proc.pid)
        for _ in range(200):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        slow = []
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            slow.append(s)
        held += slow
        for rnd in range(3):
            for s in slow:                       # a header byte now and then: never complete
                try:
                    s.sendall(b"X")
                except OSError:
                    pass
            t0 = time.monotonic()
            status, h = http("GET", f"http://127.0.0.1:{port}/api/health", timeout=5)
            took = time.monotonic() - t0
            assert status == 200 and h["ready"], h
            assert took < 5.0
        threads = _threads(proc.pid)
        assert threads <= base + 2, (base, threads)
        assert threads <= 16                     # half the unit's TasksMax=32
        assert h["hmi"]["evicted"] > 0           # over max_connections the oldest waiting ones went
        assert proc.poll() is None
    finally:
        for s in held:
            s.close()
        rc, _ = stop_process(proc)
    assert rc == 0, log.read_text()[-2000:]


def test_slow_header_is_timed_out(tmp_path):
    cfg = agent_config(tmp_path, extra="")
    text = cfg.read_text().replace('[hmi]\n', '[hmi]\nheader_timeout_s = 1\nidle_timeout_s = 2\n')
    cfg.write_text(text)
    with InProcessAgent(cfg) as run:
        host, port = _addr(run)
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(b"GET /api/health HTTP/1.1\r\n")
            assert s.recv(100) == b""            # closed by the server (header timeout)
        with socket.create_connection((host, port), timeout=10) as s:
            assert s.recv(100) == b""            # closed by the server (idle timeout)
        assert run.agent.hmi.stats()["timeouts"] >= 2
