"""In-dash HMI: a loopback web page + JSON API + server-sent events, on the stdlib only.

Routes (all JSON unless noted):
  GET  /                         the page (static/index.html); /static/<file> its assets
  GET  /api/health               agent status: ready, vehicle, bus, models, MQTT, counters
  GET  /api/session              {"token"}: the acknowledgement token of this agent run
  GET  /api/alerts[?active=1]    [{id, kind, severity, title, message, created, updated, state, explanation, ...}]
  GET  /api/alerts/{id}          one alert
  POST /api/alerts/{id}/ack      acknowledge (200 alert | 404 unknown | 409 cleared)
  GET  /api/battery              battery status: lifetime vs rated, 30-day forecast, recent days
  GET  /api/components           compliance verdict per component
  GET  /api/events               text/event-stream: `alert`, `battery`, `components`, `health`

Bad requests get a 4xx JSON `{"error": "..."}`; an internal failure is logged with its
traceback and answered with a 500 JSON message — never a traceback to the client.
Transport, limits and timeouts: agent.hmi.http.

Guards (a web page in some other browser tab must not acknowledge alerts):
  - the Host header must be the address served (or localhost): DNS rebinding -> 421;
  - an acknowledgement needs ALL of: no foreign Origin, a Sec-Fetch-Site (when the browser
    sends one) of same-origin/none, Content-Type application/json (a cross-origin page cannot
    send that without a CORS preflight, which is never granted) and the header
    X-Trey-Token equal to this run's token from GET /api/session (a cross-origin page cannot
    read it). Each refusal is a 403/415 and acknowledges nothing.

`api` is any object with: health(), alerts(active_only), alert(id), ack(id, by),
battery(), components()  (agent.daemon.Agent provides them).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import mimetypes
import re
import secrets
import socket
import threading
import time
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from agent import validate
from agent.hmi.http import LISTEN_BACKLOG, HttpError, HttpServer, Limits, Request, Response, error_response
from agent.jsonsafe import finite

log = logging.getLogger(__name__)

STATIC_DIR = Path(str(resources.files("agent") / "hmi" / "static"))
MAX_BODY = 4096
MAX_SSE_CLIENTS = 8
SSE_KEEPALIVE_S = 15.0
TOKEN_HEADER = "X-Trey-Token"

_ALERT_PATH = re.compile(r"/api/alerts/([^/]+)(/ack)?")
_GET_ROUTES = ("/api/health", "/api/session", "/api/alerts", "/api/battery", "/api/components", "/api/events")
_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'")


class _Subscriber:
    """One event-stream client: an asyncio queue on the HMI loop, fed from any thread."""

    def __init__(self, hub: "EventHub", loop, size: int):
        self.hub, self.loop = hub, loop
        self.q: asyncio.Queue = asyncio.Queue(size)
        self.since = time.monotonic()
        self.dropped = 0

    def push(self, item) -> None:
        try:
            self.loop.call_soon_threadsafe(self._put, item)
        except RuntimeError:          # loop closed: the server is stopping
            pass

    def _put(self, item) -> None:
        try:
            self.q.put_nowait(item)
        except asyncio.QueueFull:     # a slow client loses events (it re-syncs on reconnect)
            self.dropped += 1


class EventHub:
    """Fan-out of events to SSE clients; each client has a bounded queue and a slow client
    loses events (it re-syncs through the API on reconnect) instead of blocking the agent.
    At max_clients a new client evicts the OLDEST stream (a stale tab or an idle hog), so
    the driver's page, which reconnects, is never refused."""

    def __init__(self, max_clients: int = MAX_SSE_CLIENTS, queue_size: int = 256):
        self._clients: list[_Subscriber] = []
        self._lock = threading.Lock()
        self.max_clients = max_clients
        self.queue_size = queue_size
        self.evicted = 0
        self.closed = threading.Event()

    def subscribe(self, loop) -> _Subscriber:
        sub = _Subscriber(self, loop, self.queue_size)
        with self._lock:
            while len(self._clients) >= self.max_clients:
                old = self._clients.pop(0)
                old.push(("bye", ""))
                self.evicted += 1
            self._clients.append(sub)
        return sub

    def unsubscribe(self, sub: _Subscriber) -> None:
        with self._lock:
            if sub in self._clients:
                self._clients.remove(sub)

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def publish(self, event: str, data) -> None:
        with self._lock:
            clients = list(self._clients)
        if not clients:
            return
        payload = dumps(data)
        for sub in clients:
            sub.push((event, payload))

    def close(self) -> None:
        self.closed.set()
        self.publish("bye", {})


def dumps(obj) -> str:
    """JSON for browsers: NaN/Infinity (not JSON) become null."""
    try:
        return json.dumps(obj, default=str, allow_nan=False)
    except ValueError:
        return json.dumps(finite(obj), default=str, allow_nan=False)


def _sse(event: str, payload: str) -> bytes:
    return f"event: {event}\ndata: {payload}\n\n".encode()


def _parse_id(text: str) -> int | None:
    # ASCII digits only: str.isdigit() accepts "²", which int() refuses.
    if not re.fullmatch(r"[0-9]{1,12}", text):
        return None
    n = int(text)
    return n if n > 0 else None


class HmiServer:
    """Owns the HTTP event loop thread. start() binds (so 'ready' means listening)."""

    def __init__(self, api, host: str = "127.0.0.1", port: int = 8080, events: EventHub | None = None,
                 limits: Limits | None = None):
        self.api = api
        self.host, self.port = host, port
        self.limits = limits or Limits()
        self.events = events or EventHub(self.limits.max_event_streams)
        self.static_files = {f.name: f.read_bytes() for f in STATIC_DIR.iterdir() if f.is_file()}
        self.errors: dict[int, int] = {}
        self.token = secrets.token_urlsafe(24)
        self._http: HttpServer | None = None
        self._allowed_hosts: set[str] = set()
        self._exposed = False

    def count_error(self, status: int) -> None:
        self.errors[status] = self.errors.get(status, 0) + 1

    def host_allowed(self, host_header: str) -> bool:
        return self._exposed or host_header.lower() in self._allowed_hosts

    def origin_allowed(self, origin: str) -> bool:
        origin = origin.lower()
        return self._exposed or any(origin == f"http://{h}" for h in self._allowed_hosts)

    def stats(self) -> dict:
        """Connection counters for /api/health (what the limits refused or evicted)."""
        h = self._http
        c = dict(h.counters) if h else {}
        c.update(open=len(h.conns) if h else 0, event_streams=self.events.clients,
                 event_streams_evicted=self.events.evicted, errors={str(k): v for k, v in self.errors.items()})
        return c

    def start(self) -> "HmiServer":
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        names = {self.host, "localhost", "127.0.0.1", "[::1]"}
        self._exposed = self.host in ("0.0.0.0", "::", "")      # explicitly exposed: any Host
        self._allowed_hosts = {f"{n}:{self.port}".lower() for n in names} | (
            {n.lower() for n in names} if self.port == 80 else set())
        self._http = HttpServer(sock, self._handle, self._stream, self.limits, on_error=self.count_error)
        self._http.start()
        log.info("HMI listening on %s", self.url)
        return self

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else ("[::1]" if self.host == "::" else self.host)
        return f"http://{host}:{self.port}/"

    def stop(self) -> None:
        self.events.close()
        if self._http is not None:
            self._http.stop()
            self._http.sock.close()
            self._http = None

    # ---------------------------------------------------------------- routes (worker thread)
    def _error(self, status: int, message: str, extra: dict | None = None, close: bool = False) -> Response:
        self.count_error(status)
        return error_response(status, message, extra, close)

    def _handle(self, req: Request) -> Response:
        try:
            if not self.host_allowed(req.header("host", "")):
                return self._error(421, "unexpected Host header", close=True)
            if req.method in ("GET", "HEAD"):
                return self._get(req)
            if req.method == "POST":
                return self._post(req)
            return self._error(405, "method not allowed", {"Allow": "GET, HEAD, POST"})
        except HttpError as exc:
            return self._error(exc.status, exc.message, close=exc.close)
        except Exception:
            log.exception("HMI request %s %s failed", req.method, req.target[:100])
            return self._error(500, "internal error (logged by the agent)")

    def _json(self, obj, status: int = 200) -> Response:
        return Response(status, dumps(obj).encode(), "application/json")

    def _get(self, req: Request) -> Response:
        url = urlsplit(req.target)
        path, q = url.path, parse_qs(url.query)
        api = self.api
        if path in ("/", "/index.html"):
            return self._static("index.html")
        if path.startswith("/static/"):
            return self._static(path[len("/static/"):])
        if path == "/api/health":
            return self._json(api.health())
        if path == "/api/session":
            return self._json({"token": self.token, "header": TOKEN_HEADER})
        if path == "/api/alerts":
            active = q.get("active", ["0"])[-1]
            if active not in ("0", "1", "true", "false"):
                return self._error(400, "active must be 0 or 1")
            return self._json(api.alerts(active_only=active in ("1", "true")))
        if path == "/api/battery":
            return self._json(api.battery())
        if path == "/api/components":
            return self._json(api.components())
        if path == "/api/events":
            # The stream itself is written by _stream on the loop; HEAD gets the head only.
            return Response(200, b"retry: 2000\n\n" + _sse("health", dumps(api.health())),
                            "text/event-stream", stream=True)
        m = _ALERT_PATH.fullmatch(path)
        if m and not m.group(2):
            alert_id = _parse_id(m.group(1))
            if alert_id is None:
                return self._error(400, f"alert id must be a positive integer, got {m.group(1)[:40]!r}")
            alert = api.alert(alert_id)
            return self._json(alert) if alert else self._error(404, f"no alert {alert_id}")
        if m and m.group(2):
            return self._error(405, "use POST to acknowledge", {"Allow": "POST"})
        return self._error(404, f"no such resource: {path[:100]}")

    def _ack_refusal(self, req: Request) -> Response | None:
        origin = req.header("origin")
        if origin and not self.origin_allowed(origin):
            return self._error(403, "cross-origin request refused")
        site = (req.header("sec-fetch-site") or "").lower()
        if site and site not in ("same-origin", "none"):
            return self._error(403, f"cross-site request refused (Sec-Fetch-Site: {site[:20]})")
        ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return self._error(415, "Content-Type must be application/json")
        if not hmac.compare_digest((req.header(TOKEN_HEADER) or "").encode("latin-1"), self.token.encode()):
            return self._error(403, f"missing or stale {TOKEN_HEADER} (GET /api/session)")
        return None

    def _post(self, req: Request) -> Response:
        path = urlsplit(req.target).path
        m = _ALERT_PATH.fullmatch(path)
        if not (m and m.group(2)):
            if path in _GET_ROUTES or _ALERT_PATH.fullmatch(path) or path in ("/", "/index.html"):
                return self._error(405, "method not allowed", {"Allow": "GET, HEAD"})
            return self._error(404, f"no such resource: {path[:100]}")
        refused = self._ack_refusal(req)
        if refused is not None:
            return refused
        alert_id = _parse_id(m.group(1))
        if alert_id is None:
            return self._error(400, f"alert id must be a positive integer, got {m.group(1)[:40]!r}")
        by = "driver"
        if req.body.strip():
            try:
                doc = validate.loads_json(req.body)
            except validate.InvalidInput as exc:
                return self._error(400, f"body must be JSON: {exc}")
            if not isinstance(doc, dict) or set(doc) - {"by"}:
                return self._error(400, 'body must be {"by": "<who>"}')
            try:
                by = validate.text(doc.get("by", "driver"), "by", 64) or "driver"
            except validate.InvalidInput as exc:
                return self._error(400, str(exc))
        from agent.alerts import AlertError
        try:
            alert = self.api.ack(alert_id, by=by)
        except KeyError:
            return self._error(404, f"no alert {alert_id}")
        except AlertError as exc:
            return self._error(409, str(exc))
        return self._json(alert)

    def _static(self, name: str) -> Response:
        files = self.static_files
        if name not in files:   # whitelist: only files that exist in static/ at start
            return self._error(404, f"no such file: {name[:100]}")
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype == "application/javascript":
            ctype += "; charset=utf-8"
        return Response(200, files[name], ctype, {"Content-Security-Policy": _CSP})

    # ---------------------------------------------------------------- event stream (loop thread)
    async def _stream(self, req: Request, writer, reader) -> None:
        hub = self.events
        sub = hub.subscribe(asyncio.get_running_loop())
        # Anything from the client (or its EOF) ends the stream: nothing is expected.
        eof = asyncio.ensure_future(reader.read(1024))
        try:
            while not hub.closed.is_set():
                get = asyncio.ensure_future(sub.q.get())
                done, _ = await asyncio.wait({get, eof}, timeout=SSE_KEEPALIVE_S,
                                             return_when=asyncio.FIRST_COMPLETED)
                if eof in done:
                    get.cancel()
                    break
                if get in done:
                    event, payload = get.result()
                    if event == "bye":
                        break
                    data = _sse(event, payload)
                else:
                    get.cancel()
                    data = b": keep-alive\n\n"
                writer.write(data)
                await asyncio.wait_for(writer.drain(), self.limits.write_timeout_s)
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            eof.cancel()
            hub.unsubscribe(sub)


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
