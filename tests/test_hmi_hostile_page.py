"""A hostile web page in real headless Chromium tries to acknowledge the driver's alert
(issue #10 item 2): request smuggling through a 413 (body > 4 KiB refused unread) and a 421
(foreign Host via *.localhost, which Chromium resolves to loopback), a plain cross-origin
POST, a JSON POST (needs a preflight) and a form post. None may acknowledge; the 413 and
421 answers must have been given (the attack paths were really taken)."""

from __future__ import annotations

import http.server
import threading

from tests.conftest import free_port
from tests.daemon_support import InProcessAgent, agent_config


HOSTILE = """<!doctype html><html><body><form id="f" method="POST" enctype="text/plain"
action="{agent}/api/alerts/{id}/ack"><input name='{{"by":"form","x":"' value='"}}'></form>
<script>
const agent = "{agent}", id = {id};
const smuggled = "POST /api/alerts/" + id + "/ack HTTP/1.1\\r\\nHost: 127.0.0.1:{port}\\r\\n" +
  "Content-Type: application/json\\r\\nContent-Length: 15\\r\\n\\r\\n" + '{{"by":"smuggl"}}';
async function attack() {{
  const tries = [
    [agent + "/api/alerts/" + id + "/ack", {{method: "POST", mode: "no-cors", body: smuggled + " ".repeat(5000)}}],
    ["http://rebind.localhost:{port}/api/alerts/" + id + "/ack", {{method: "POST", mode: "no-cors", body: smuggled}}],
    [agent + "/api/alerts/" + id + "/ack", {{method: "POST", mode: "no-cors", body: '{{"by":"evil"}}'}}],
    [agent + "/api/alerts/" + id + "/ack", {{method: "POST", headers: {{"Content-Type": "application/json"}},
                                            body: '{{"by":"evil"}}'}}],
    [agent + "/api/session", {{}}],
  ];
  const out = [];
  for (const [url, opts] of tries) {{
    try {{ const r = await fetch(url, opts); out.push(r.type + ":" + r.status + ":" + (r.type === "opaque" ? "" : await r.text())); }}
    catch (e) {{ out.push("error:" + e.message); }}
  }}
  return out;
}}
</script></body></html>"""


def _serve(html: str):
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_hostile_page_cannot_acknowledge(browser, tmp_path):
    with InProcessAgent(agent_config(tmp_path)) as run:
        agent = run.agent
        alert, _ = agent.alerts.raise_or_update(
            "battery:B-1", "battery", "critical", "Battery service needed",
            "Battery expected to reach end of life in about 3 days", {"days_to_rated": 3}, vehicle_date="2024-05-01")
        port = agent.hmi.port
        srv = _serve(HOSTILE.format(agent=run.url, id=alert["id"], port=port))
        try:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{srv.server_address[1]}/evil.html")
            results = page.evaluate("attack()")
            # The form navigates asynchronously: wait for the agent's answer to it, or the
            # refusal below may not have been counted yet.
            with page.expect_navigation():
                page.evaluate("document.getElementById('f').submit()")
            page.close()
        finally:
            srv.shutdown()
        assert agent.alerts.get(alert["id"])["state"] == "raised", results
        errors = agent.hmi.errors
        assert errors.get(413, 0) >= 1 and errors.get(421, 0) >= 1, (errors, results)
        assert errors.get(403, 0) + errors.get(415, 0) >= 2, (errors, results)
        # The token endpoint is not readable cross-origin (no CORS): the page got nothing.
        assert not any("token" in r for r in results), results

        # The agent's own page still acknowledges (token from /api/session, JSON, same origin).
        own = browser.new_page()
        own.goto(run.url + "/")
        own.locator(f'article.alert[data-id="{alert["id"]}"] button.ack').click()
        own.wait_for_selector(f'article.alert[data-id="{alert["id"]}"][data-state="acknowledged"]', timeout=10_000)
        assert not own.locator("#chip-store").is_visible()      # storage fine: no recovery chip
        own.close()
        assert agent.alerts.get(alert["id"])["acknowledged_by"] == "driver"
