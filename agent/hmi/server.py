"""In-dash HMI: a loopback web page + JSON API + server-sent events, on the stdlib only.

Routes (all JSON unless noted):
  GET  /                         the page (static/index.html); /static/<file> its assets
  GET  /api/health               agent status: ready, vehicle, bus, models, MQTT, counters
  GET  /api/alerts[?active=1]    [{id, kind, severity, title, message, created, updated, state, explanation, ...}]
  GET  /api/alerts/{id}          one alert
  POST /api/alerts/{id}/ack      acknowledge (200 alert | 404 unknown | 409 cleared)
  GET  /api/battery              battery status: lifetime vs rated, 30-day forecast, recent days
  GET  /api/components           compliance verdict per component
  GET  /api/events               text/event-stream: `alert`, `battery`, `components`, `health`

Bad requests get a 4xx JSON `{"error": "..."}`; an internal failure is logged with its
traceback and answered with a 500 JSON message — never a traceback to the client.
The server answers only requests whose Host is the address it serves (or localhost), and
refuses cross-origin POSTs: a web page in some other browser tab must not be able to
acknowledge alerts through DNS rebinding or CSRF.

`api` is any object with: health(), alerts(active_only), alert(id), ack(id, by),
battery(), components()  (agent.daemon.Agent provides them).
"""

from __future__ import annotations

import json
import logging
import mimetypes
import queue
import re
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from agent.jsonsafe import finite

log = logging.getLogger(__name__)

STATIC_DIR = Path(str(resources.files("agent") / "hmi" / "static"))
MAX_BODY = 4096
MAX_SSE_CLIENTS = 8
SSE_KEEPALIVE_S = 15.0
_ALERT_PATH = re.compile(r"^/api/alerts/([^/]+)(/ack)?$")


class EventHub:
    """Fan-out of events to SSE clients; each client has a bounded queue and a slow client
    loses events (it re-syncs through the API on reconnect) instead of blocking the agent."""

    def __init__(self, max_clients: int = MAX_SSE_CLIENTS, queue_size: int = 256):
        self._clients: set[queue.Queue] = set()
        self._lock = threading.Lock()
        self.max_clients = max_clients
        self.queue_size = queue_size
        self.closed = threading.Event()

    def subscribe(self) -> queue.Queue | None:
        with self._lock:
            if len(self._clients) >= self.max_clients:
                return None
            q: queue.Queue = queue.Queue(self.queue_size)
            self._clients.add(q)
            return q

    def unsubscribe(self, q: queue.Queue) -> None:
        with self._lock:
            self._clients.discard(q)

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def publish(self, event: str, data) -> None:
        payload = dumps(data)
        with self._lock:
            clients = list(self._clients)
        for q in clients:
            try:
                q.put_nowait((event, payload))
            except queue.Full:
                pass

    def close(self) -> None:
        self.closed.set()
        self.publish("bye", {})


class _Handler(BaseHTTPRequestHandler):
    server_version = "trey-hmi/1"
    protocol_version = "HTTP/1.1"

    # The HMI server instance (set on the subclass built per server).
    hmi: "HmiServer"

    def log_message(self, fmt, *args):  # access log at debug level, to our logger
        log.debug("%s %s", self.address_string(), fmt % args)

    # -- responses -----------------------------------------------------------------------
    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, dumps(obj).encode(), "application/json")

    def _error(self, status: int, message: str, extra: dict | None = None) -> None:
        self.hmi.count_error(status)
        self._send(status, json.dumps({"error": message, "status": status}).encode(), "application/json", extra)

    def send_error(self, code, message=None, explain=None):
        # Called by the base class for malformed request lines/headers: answer in JSON too
        # (with a status line even when the request line was unparseable, i.e. "HTTP/0.9").
        self.close_connection = True
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        try:
            self._error(int(code), message or HTTPStatus(code).phrase)
        except Exception:
            pass

    # -- dispatch ------------------------------------------------------------------------
    def _guarded(self, fn) -> None:
        try:
            if not self.hmi.host_allowed(self.headers.get("Host", "")):
                return self._error(421, "unexpected Host header")
            fn()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            log.exception("HMI request %s %s failed", self.command, self.path)
            self.close_connection = True
            try:
                self._error(500, "internal error (logged by the agent)")
            except OSError:
                pass

    def do_GET(self):
        self._guarded(self._get)

    def do_HEAD(self):
        self._guarded(self._get)

    def do_POST(self):
        self._guarded(self._post)

    def do_PUT(self):
        self._guarded(lambda: self._error(405, "method not allowed", {"Allow": "GET, HEAD, POST"}))

    do_DELETE = do_PATCH = do_PUT

    def _get(self) -> None:
        url = urlsplit(self.path)
        path, q = url.path, parse_qs(url.query)
        api = self.hmi.api
        if path in ("/", "/index.html"):
            return self._static("index.html")
        if path.startswith("/static/"):
            return self._static(path[len("/static/"):])
        if path == "/api/health":
            return self._json(200, api.health())
        if path == "/api/alerts":
            active = q.get("active", ["0"])[-1]
            if active not in ("0", "1", "true", "false"):
                return self._error(400, "active must be 0 or 1")
            return self._json(200, api.alerts(active_only=active in ("1", "true")))
        if path == "/api/battery":
            return self._json(200, api.battery())
        if path == "/api/components":
            return self._json(200, api.components())
        if path == "/api/events":
            return self._events()
        m = _ALERT_PATH.match(path)
        if m and not m.group(2):
            alert_id = _parse_id(m.group(1))
            if alert_id is None:
                return self._error(400, f"alert id must be a positive integer, got {m.group(1)[:40]!r}")
            alert = api.alert(alert_id)
            return self._json(200, alert) if alert else self._error(404, f"no alert {alert_id}")
        if m and m.group(2):
            return self._error(405, "use POST to acknowledge", {"Allow": "POST"})
        return self._error(404, f"no such resource: {path[:100]}")

    def _post(self) -> None:
        path = urlsplit(self.path).path
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit():
            return self._error(400, "bad Content-Length")
        if int(length) > MAX_BODY:
            return self._error(413, f"body larger than {MAX_BODY} bytes")
        body = self.rfile.read(int(length)) if int(length) else b""
        origin = self.headers.get("Origin")
        if origin and not self.hmi.origin_allowed(origin):
            return self._error(403, "cross-origin request refused")
        m = _ALERT_PATH.match(path)
        if not (m and m.group(2)):
            if self._is_get_route(path) or path in ("/", "/index.html"):
                return self._error(405, "method not allowed", {"Allow": "GET, HEAD"})
            return self._error(404, f"no such resource: {path[:100]}")
        alert_id = _parse_id(m.group(1))
        if alert_id is None:
            return self._error(400, f"alert id must be a positive integer, got {m.group(1)[:40]!r}")
        by = "driver"
        if body.strip():
            try:
                doc = json.loads(body)
            except ValueError:
                return self._error(400, "body must be JSON")
            if not isinstance(doc, dict) or not isinstance(doc.get("by", "driver"), str):
                return self._error(400, 'body must be {"by": "<who>"}')
            by = doc.get("by", "driver")[:64] or "driver"
        from agent.alerts import AlertError
        try:
            alert = self.hmi.api.ack(alert_id, by=by)
        except KeyError:
            return self._error(404, f"no alert {alert_id}")
        except AlertError as exc:
            return self._error(409, str(exc))
        return self._json(200, alert)

    @staticmethod
    def _is_get_route(path: str) -> bool:
        return path in ("/api/health", "/api/alerts", "/api/battery", "/api/components", "/api/events") \
            or bool(_ALERT_PATH.match(path))

    def _static(self, name: str) -> None:
        files = self.hmi.static_files
        if name not in files:   # whitelist: only files that exist in static/ at start
            return self._error(404, f"no such file: {name[:100]}")
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype == "application/javascript":
            ctype += "; charset=utf-8"
        self._send(200, files[name], ctype, {
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                       "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"})

    def _events(self) -> None:
        hub = self.hmi.events
        q = hub.subscribe()
        if q is None:
            return self._error(503, "too many event-stream clients", {"Retry-After": "5"})
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self.wfile.write(b"retry: 2000\n\n")
            self.wfile.write(_sse("health", dumps(self.hmi.api.health())))
            self.wfile.flush()
            while not hub.closed.is_set():
                try:
                    event, payload = q.get(timeout=SSE_KEEPALIVE_S)
                except queue.Empty:
                    self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
                    continue
                if event == "bye":
                    break
                self.wfile.write(_sse(event, payload))
                self.wfile.flush()
        finally:
            hub.unsubscribe(q)


def dumps(obj) -> str:
    """JSON for browsers: NaN/Infinity (not JSON) become null."""
    try:
        return json.dumps(obj, default=str, allow_nan=False)
    except ValueError:
        return json.dumps(finite(obj), default=str, allow_nan=False)


def _sse(event: str, payload: str) -> bytes:
    return f"event: {event}\ndata: {payload}\n\n".encode()


def _parse_id(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < len(text) <= 12 and int(text) > 0 else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 16


class HmiServer:
    """Owns the HTTP server thread. start() binds (so 'ready' means listening)."""

    def __init__(self, api, host: str = "127.0.0.1", port: int = 8080, events: EventHub | None = None):
        self.api = api
        self.host, self.port = host, port
        self.events = events or EventHub()
        self.static_files = {f.name: f.read_bytes() for f in STATIC_DIR.iterdir() if f.is_file()}
        self.errors: dict[int, int] = {}
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._allowed_hosts: set[str] = set()

    def count_error(self, status: int) -> None:
        self.errors[status] = self.errors.get(status, 0) + 1

    def host_allowed(self, host_header: str) -> bool:
        return host_header.lower() in self._allowed_hosts

    def origin_allowed(self, origin: str) -> bool:
        origin = origin.lower()
        return any(origin == f"http://{h}" for h in self._allowed_hosts)

    def start(self) -> "HmiServer":
        handler = type("HmiHandler", (_Handler,), {"hmi": self})
        server_cls = type("HmiServer6", (_Server,), {"address_family": socket.AF_INET6}) if ":" in self.host else _Server
        self._httpd = server_cls((self.host, self.port), handler)
        self.port = self._httpd.server_address[1]
        names = {self.host, "localhost", "127.0.0.1", "[::1]"}
        if self.host in ("0.0.0.0", "::", ""):
            self._allowed_hosts = set()
            self.host_allowed = lambda h: True       # explicitly exposed: any Host
            self.origin_allowed = lambda o: True
        self._allowed_hosts = {f"{n}:{self.port}".lower() for n in names} | (
            {n.lower() for n in names} if self.port == 80 else set())
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="hmi-http", daemon=True)
        self._thread.start()
        log.info("HMI listening on %s", self.url)
        return self

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else ("[::1]" if self.host == "::" else self.host)
        return f"http://{host}:{self.port}/"

    def stop(self) -> None:
        self.events.close()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None


def wait_http(url: str, timeout: float = 5.0) -> None:
    """Poll until url answers (tests, demo)."""
    import urllib.request
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
