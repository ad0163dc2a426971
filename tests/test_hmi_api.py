"""The HMI's JSON API and event stream, served by a real agent (virtual bus, shipped bundles)."""

from __future__ import annotations

import json
import socket
from http.client import HTTPConnection
from urllib.parse import urlsplit

import pytest

from tests.conftest import wait_until
from tests.daemon_support import InProcessAgent, ack_headers, agent_config, http

ALERT_FIELDS = {"id", "kind", "severity", "title", "message", "created", "updated", "state", "explanation"}


@pytest.fixture
def running(tmp_path):
    with InProcessAgent(agent_config(tmp_path)) as a:
        yield a


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One agent for the many bad-request cases (each leaves the state as it found it)."""
    with InProcessAgent(agent_config(tmp_path_factory.mktemp("shared"))) as a:
        yield a


def _raise(agent, key="battery:B-1", days=12):
    alert, _ = agent.alerts.raise_or_update(
        key, "battery", "warning", "Battery service needed",
        f"Battery expected to reach end of life in about {days} days — schedule a service appointment",
        {"days_to_rated": days, "lifetime_cycles": 190.0, "rated_cycles": 200.0}, vehicle_date="2024-05-01")
    return alert


def test_health_and_reads(running):
    from agent.bundle import DEFAULT_BATTERY_BUNDLE, DEFAULT_COMPLIANCE_BUNDLE, MANIFEST
    missing = [str(b) for b in (DEFAULT_BATTERY_BUNDLE, DEFAULT_COMPLIANCE_BUNDLE) if not (b / MANIFEST).exists()]
    if missing:
        pytest.skip(f"shipped bundle(s) not built yet: {missing}")
    status, h = http("GET", running.url + "/api/health")
    assert status == 200 and h["ready"] is True and h["vehicle_id"] == "TEST-CAR-1"
    assert h["models"]["battery"]["version"] and h["models"]["compliance"]["version"]
    assert h["mqtt"]["state"] == "offline"
    assert http("GET", running.url + "/api/alerts") == (200, [])
    status, b = http("GET", running.url + "/api/battery")
    assert status == 200 and b["battery_id"] is None and b["forecast"] is None
    assert http("GET", running.url + "/api/components") == (200, [])
    status, page = http("GET", running.url + "/")
    assert status == 200 and "<title>" in page and "/static/app.js" in page
    for asset in ("app.js", "app.css"):
        assert http("GET", f"{running.url}/static/{asset}")[0] == 200


def test_alert_list_and_ack(running):
    a = _raise(running.agent)
    status, items = http("GET", running.url + "/api/alerts")
    assert status == 200 and len(items) == 1
    assert ALERT_FIELDS <= set(items[0]) and items[0]["kind"] == "battery" and items[0]["state"] == "raised"
    assert http("GET", f"{running.url}/api/alerts/{a['id']}")[1]["id"] == a["id"]
    status, acked = http("POST", f"{running.url}/api/alerts/{a['id']}/ack", b'{"by": "driver"}',
                         ack_headers(running.url))
    assert status == 200 and acked["state"] == "acknowledged" and acked["acknowledged_by"] == "driver"
    assert running.agent.alerts.get(a["id"])["state"] == "acknowledged"     # persisted
    assert http("GET", running.url + "/api/alerts?active=1")[1][0]["state"] == "acknowledged"
    running.agent.alerts.clear("battery:B-1")
    status, err = http("POST", f"{running.url}/api/alerts/{a['id']}/ack", None, ack_headers(running.url))
    assert status == 409 and "cleared" in err["error"]


@pytest.mark.parametrize("method,path,body,headers,expect", [
    ("GET", "/api/alerts/abc", None, {}, 400),
    ("GET", "/api/alerts/0", None, {}, 400),
    ("GET", "/api/alerts/99999", None, {}, 404),
    ("POST", "/api/alerts/99999/ack", None, "token", 404),
    ("POST", "/api/alerts/-1/ack", None, "token", 400),
    ("GET", "/api/alerts/%C2%B2", None, {}, 400),
    ("POST", "/api/alerts/{id}/ack", b'{"by": "\\ud800"}', "token", 400),
    ("POST", "/api/alerts/{id}/ack", b"[" * 4000, "token", 400),
    ("POST", "/api/alerts/{id}/ack", b'{"by": "x", "by": "y"}', "token", 400),
    ("POST", "/api/alerts/{id}/ack", b'{"by": "x"}', {}, 415),
    ("POST", "/api/alerts/{id}/ack", b'{"by": "x"}', {"Content-Type": "application/json"}, 403),
    ("POST", "/api/alerts/{id}/ack", b'{"by": "x"}', {"Content-Type": "text/plain"}, 415),
    ("GET", "/api/alerts/1/ack", None, {}, 405),
    ("GET", "/api/alerts?active=maybe", None, {}, 400),
    ("GET", "/api/nothing", None, {}, 404),
    ("GET", "/static/../../etc/passwd", None, {}, 404),
    ("GET", "/static/secret.py", None, {}, 404),
    ("PUT", "/api/alerts", b"{}", {}, 405),
    ("DELETE", "/api/alerts/1", None, {}, 405),
    ("POST", "/api/health", b"", {}, 405),
    ("POST", "/api/alerts/{id}/ack", b"{not json", "token", 400),
    ("POST", "/api/alerts/{id}/ack", b'["by"]', "token", 400),
    ("POST", "/api/alerts/{id}/ack", b"x" * 5000, "token", 413),
    ("POST", "/api/alerts/{id}/ack", None, {"Origin": "http://evil.example"}, 403),
    ("POST", "/api/alerts/{id}/ack", b'{}', "token+evil-origin", 403),
    ("POST", "/api/alerts/{id}/ack", b'{}', "token+cross-site", 403),
    ("GET", "/api/alerts", None, {"Host": "attacker.example:80"}, 421),
])
def test_bad_requests_get_json_4xx(shared, method, path, body, headers, expect):
    running = shared
    a = _raise(running.agent)
    if isinstance(headers, str):        # a complete acknowledgement request, plus what the case adds
        kind, headers = headers, ack_headers(running.url)
        if "evil-origin" in kind:
            headers["Origin"] = "http://evil.example"
        if "cross-site" in kind:
            headers["Sec-Fetch-Site"] = "cross-site"
    status, payload = http(method, running.url + path.replace("{id}", str(a["id"])), body, headers)
    assert status == expect, payload
    assert isinstance(payload, dict) and payload["status"] == expect and payload["error"]
    assert "Traceback" not in json.dumps(payload)
    assert running.agent.alerts.get(a["id"])["state"] == "raised"     # nothing acknowledged by a bad request


def test_malformed_http_gets_json_not_traceback(running):
    host, port = urlsplit(running.url).hostname, urlsplit(running.url).port
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"BREW /coffee HTCPCP/1.0\r\n\r\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        raw = b"".join(chunks).decode(errors="replace")
    assert raw.startswith("HTTP/1.") and " 400 " in raw.splitlines()[0], raw
    assert '"error"' in raw and "Traceback" not in raw
    assert http("GET", running.url + "/api/health")[0] == 200    # server still fine


def test_event_stream_pushes_alerts(running):
    u = urlsplit(running.url)
    conn = HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("GET", "/api/events")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream"

    def next_event():
        event, data = None, None
        while True:
            line = resp.fp.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "" and event:
                return event, data

    assert next_event()[0] == "health"
    wait_until(lambda: running.agent.hmi.events.clients == 1, 5, what="SSE subscription")
    a = _raise(running.agent, days=9)
    while True:
        event, data = next_event()
        if event == "alert":
            break
    assert data["id"] == a["id"] and data["change"] == "raised" and "9 days" in data["message"]
    conn.close()
