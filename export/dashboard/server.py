"""The dashboard's HTTP side: stdlib threaded server, read-only, loopback by default.

  GET /                      the page (static/index.html; every view is a query string: shareable)
  GET /static/<file>         the page's files, all vendored (no CDN at run time)
  GET /api/meta              lake tables present, their rows, the reference time
  GET /api/overview          ?days=90&kind=battery|compliance
  GET /api/battery/risk      ?within=30|60|90|...&model=&q=&sort=&order=asc|desc&limit=
  GET /api/battery/accuracy  ?model=&since=YYYY-MM-DD&until=YYYY-MM-DD
  GET /api/compliance        ?part=&cause=year|material|condition|not_stated&verdict=&limit=
  GET /api/vehicles          ?q=&limit=
  GET /api/vehicle           ?id=V000123&days=365
Every /api/... answers JSON; add `format=csv&table=NAME` for one of its tables as CSV (default:
its first table; without `limit`, a CSV holds the whole selection, up to 100,000 rows). Bad parameters -> 400 JSON naming the parameter; unknown vehicle -> 404;
a missing lake -> 503 JSON (the page says so); never a traceback.

Not trivially lockable: one thread per connection (bounded: beyond MAX_INFLIGHT concurrent
requests -> 503), a socket timeout per connection (a slow or silent client cannot hold a
thread), request line/headers bounded by http.server, GET/HEAD only.
Auth (for a shared deployment): `--token T` (Authorization: Bearer T, or ?token=T once, which
sets a cookie) and/or `--basic-auth user:password`; compared in constant time.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hmac
import io
import json
import logging
import math
import mimetypes
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from export.dashboard.queries import BadParam, Lake, LakeMissing

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")
MAX_INFLIGHT = 16
SOCKET_TIMEOUT_S = 15.0
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_TEXT = re.compile(r"^[\w .:@/+-]{1,64}$")


def _int(lo, hi):
    def f(v):
        if not re.fullmatch(r"\d{1,7}", v):
            raise ValueError("an integer")
        n = int(v)
        if not lo <= n <= hi:
            raise ValueError(f"between {lo} and {hi}")
        return n
    return f


def _match(rx, what):
    def f(v):
        if not rx.fullmatch(v):
            raise ValueError(what)
        return v
    return f


def _one_of(*xs):
    def f(v):
        if v not in xs:
            raise ValueError("one of " + ", ".join(xs))
        return v
    return f


def _date(v):
    if not _DATE.fullmatch(v):
        raise ValueError("a date YYYY-MM-DD")
    dt.date.fromisoformat(v)
    return v


_text = _match(_TEXT, "letters, digits, space and .:@/+- (at most 64)")
# endpoint -> (Lake method, {param: (parser, default)})
ROUTES = {
    "/api/meta": ("meta", {}),
    "/api/overview": ("overview", {"days": (_int(1, 3660), 90), "kind": (_one_of("battery", "compliance"), None)}),
    "/api/battery/risk": ("battery_risk", {
        "within": (_int(0, 3660), 90), "model": (_text, None), "q": (_text, None),
        "sort": (_match(re.compile(r"^[a-z_]{1,32}$"), "a column name"), "eol_date"),
        "order": (_one_of("asc", "desc"), "asc"), "limit": (_int(1, 100_000), 1000)}),
    "/api/battery/accuracy": ("accuracy", {"model": (_text, None), "since": (_date, None), "until": (_date, None)}),
    "/api/compliance": ("compliance", {
        "part": (_text, None), "cause": (_one_of("year", "material", "condition", "not_stated"), None),
        "verdict": (_one_of("compliant", "non_compliant", "undetermined"), None), "limit": (_int(1, 100_000), 1000)}),
    "/api/vehicles": ("vehicles", {"q": (_match(_ID, "a vehicle id fragment"), ""), "limit": (_int(1, 500), 20)}),
    "/api/vehicle": ("vehicle", {"id": (_match(_ID, "a vehicle id"), None), "days": (_int(1, 3660), 365)}),
}
COMMON = {"format", "table", "token"}


def jsonable(o):
    if isinstance(o, dt.datetime):   # naive = UTC (the lake's convention), never the server's zone
        o = o.replace(tzinfo=dt.timezone.utc) if o.tzinfo is None else o.astimezone(dt.timezone.utc)
        return o.isoformat().replace("+00:00", "Z")
    if isinstance(o, dt.date):
        return o.isoformat()
    if hasattr(o, "__float__"):     # Decimal from SUM over BIGINT
        return float(o)
    return str(o)


def _finite(o):
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, list):
        return [_finite(x) for x in o]
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    return o


def to_json(obj) -> bytes:
    try:
        return json.dumps(obj, default=jsonable, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:      # a NaN/inf somewhere (JSON has none): null, walking the tree only then
        return json.dumps(_finite(obj), default=jsonable, separators=(",", ":"), allow_nan=False).encode()


def to_csv(table: dict) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(table["columns"])
    for r in table["rows"]:
        w.writerow(["" if v is None else (jsonable(v) if not isinstance(v, (str, int, float)) else v) for v in r])
    return buf.getvalue().encode()


class Dashboard:
    """The app: routes a parsed GET to the lake and renders JSON / CSV / static files."""

    def __init__(self, lake_uri: str, token: str | None = None, basic: str | None = None):
        self.lake_uri = lake_uri
        self.token = token
        self.basic = basic
        self._lake: Lake | None = None
        self._lake_lock = threading.Lock()
        self.inflight = threading.BoundedSemaphore(MAX_INFLIGHT)

    def lake(self) -> Lake:
        with self._lake_lock:
            if self._lake is None:
                self._lake = Lake(self.lake_uri)
            lk = self._lake
            if lk.con is None:
                lk.refresh_if_changed()        # the lake may have appeared since
        if lk.con is None:
            raise LakeMissing(f"no lake at {self.lake_uri}")
        return lk

    def close(self) -> None:
        with self._lake_lock:
            if self._lake is not None:
                self._lake.close()        # removes the snapshot files
                self._lake = None

    # -- auth ---------------------------------------------------------------------
    def authorised(self, headers, query: dict) -> tuple[bool, bool]:
        """(ok, set_cookie)."""
        if not self.token and not self.basic:
            return True, False
        auth = headers.get("Authorization", "")
        if self.token:
            if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].encode(), self.token.encode()):
                return True, False
            cookie = headers.get("Cookie", "")
            m = re.search(r"(?:^|;\s*)trey_dashboard=([^;]+)", cookie)
            if m and hmac.compare_digest(m.group(1).encode(), self.token.encode()):
                return True, False
            t = query.get("token", [""])[0]
            if t and hmac.compare_digest(t.encode(), self.token.encode()):
                return True, True
        if self.basic and auth.startswith("Basic "):
            try:
                got = base64.b64decode(auth[6:], validate=True)
            except ValueError:
                got = b""
            if hmac.compare_digest(got, self.basic.encode()):
                return True, False
        return False, False

    # -- api ------------------------------------------------------------------------
    def api(self, path: str, query: dict) -> tuple[int, str, bytes, str | None]:
        """-> (status, content type, body, download filename)."""
        method, spec = ROUTES[path]
        unknown = sorted(set(query) - set(spec) - COMMON)
        if unknown:
            return self.error(400, f"unknown parameter {unknown[0]!r}", unknown[0])
        args = {}
        for name, (parse, default) in spec.items():
            vals = query.get(name)
            if vals is None:
                args[name] = default
                continue
            if len(vals) != 1:
                return self.error(400, f"{name}: given more than once", name)
            if vals[0] == "" and default is None:
                args[name] = None
                continue
            try:
                args[name] = parse(vals[0])
            except ValueError as exc:
                return self.error(400, f"{name}: must be {exc}", name)
        fmt = query.get("format", ["json"])[0]
        if fmt not in ("json", "csv"):
            return self.error(400, "format: must be json or csv", "format")
        if fmt == "csv" and "limit" in spec and "limit" not in query and path != "/api/vehicles":
            args["limit"] = 100_000     # an export is the whole selection, not the page's first rows
        if path == "/api/vehicle" and not args["id"]:
            return self.error(400, "id: required (a vehicle id)", "id")
        try:
            result = getattr(self.lake(), method)(**args)
        except BadParam as exc:
            return self.error(400, str(exc), exc.param)
        except LakeMissing as exc:
            return self.error(503, f"{exc}: generate one (trey-export dashboard --demo) or point --lake at "
                                   "the lake the Spark jobs write", None)
        if result is None:
            return self.error(404, f"no vehicle {args.get('id')!r} in the lake", "id")
        if fmt == "json":
            return 200, "application/json", to_json(result), None
        if method == "meta":
            tables = {"tables": {"columns": ["table", "present", "rows"],
                                 "rows": [[k, v["present"], v["rows"]] for k, v in result["tables"].items()]}}
        else:
            tables = result["tables"]
        name = query.get("table", [next(iter(tables), "")])[0]
        if name not in tables:
            return self.error(400, f"table: must be one of {', '.join(tables)}", "table")
        fname = f"{method}_{name}.csv"
        return 200, "text/csv; charset=utf-8", to_csv(tables[name]), fname

    @staticmethod
    def error(status: int, message: str, param: str | None) -> tuple[int, str, bytes, None]:
        body = {"error": message, "status": status}
        if param:
            body["param"] = param
        return status, "application/json", to_json(body), None

    def static(self, path: str) -> tuple[int, str, bytes, None]:
        name = "index.html" if path == "/" else path[len("/static/"):]
        f = (STATIC / name).resolve()
        if STATIC.resolve() not in f.parents or not f.is_file():
            return self.error(404, "not found", None)
        ctype = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/javascript",):
            ctype += "; charset=utf-8"
        return 200, ctype, f.read_bytes(), None


class _Handler(BaseHTTPRequestHandler):
    server_version = "trey-dashboard"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_S       # applied to the connection's socket by StreamRequestHandler
    app: Dashboard

    def log_message(self, fmt, *args):   # one line per request at DEBUG, not stderr noise
        log.debug("%s " + fmt, self.address_string(), *args)

    def do_HEAD(self):
        self.do_GET(head=True)

    def do_GET(self, head: bool = False):
        started = time.monotonic()
        app = self.app
        if not app.inflight.acquire(blocking=False):
            return self._send(*app.error(503, "busy: too many requests in flight", None), head=head,
                              extra={"Retry-After": "1"})
        try:
            url = urlsplit(self.path)
            try:
                query = parse_qs(url.query, keep_blank_values=True, max_num_fields=50)
            except ValueError:
                return self._send(*app.error(400, "malformed query string", None), head=head)
            ok, set_cookie = app.authorised(self.headers, query)
            if not ok:
                extra = {"WWW-Authenticate": 'Basic realm="trey fleet dashboard"'} if app.basic else {}
                return self._send(*app.error(401, "authentication required", None), head=head, extra=extra)
            extra = {}
            if set_cookie:
                extra["Set-Cookie"] = f"trey_dashboard={app.token}; HttpOnly; SameSite=Strict; Path=/"
            if url.path in ROUTES:
                try:
                    res = app.api(url.path, query)
                except Exception:       # a bug, not the client's fault: logged, answered as JSON
                    log.exception("dashboard %s failed", url.path)
                    res = app.error(500, "internal error (logged on the server)", None)
            elif url.path == "/" or url.path.startswith("/static/"):
                res = app.static(url.path)
            elif url.path == "/healthz":
                res = (200, "application/json", b'{"ok":true}', None)
            else:
                res = app.error(404, "not found", None)
            self._send(*res, head=head, extra=extra)
            log.debug("GET %s -> %s in %.0f ms", url.path, res[0], 1000 * (time.monotonic() - started))
        finally:
            app.inflight.release()

    def do_POST(self):
        self._send(*self.app.error(405, "read-only: GET only", None), extra={"Allow": "GET, HEAD"})

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _send(self, status, ctype, body, filename=None, head=False, extra=None):
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store" if "json" in ctype or "csv" in ctype else "max-age=300")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy",
                             "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'")
            if filename:
                self.send_header("Content-Disposition", f'attachment; filename="{filename}"')
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if not head:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def make_server(app: Dashboard, host: str = "127.0.0.1", port: int = 8090) -> ThreadingHTTPServer:
    handler = type("Handler", (_Handler,), {"app": app})
    return _Server((host, port), handler)
