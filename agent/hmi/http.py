"""HTTP/1.1 for the HMI on one asyncio event loop: idle or slow clients cost no thread.

Why not http.server: it spends one thread per connection and never times a socket out, so
61 idle TCP connections exhausted a 64-task unit and 1,000 slowloris clients made 1,003
threads. Here every connection is a coroutine on the loop thread; route handlers (they read
SQLite) run on a small fixed pool of worker threads.

Rules (each bound is an `[hmi]` config key, README "HMI limits"):
  - a request head (request line + headers) is at most MAX_HEAD bytes and must arrive within
    header_timeout_s of its first byte; a connection that sends nothing for idle_timeout_s
    (fresh or between keep-alive requests) is closed; a body must arrive within
    body_timeout_s and be at most max_body bytes; a client that does not read a response
    within write_timeout_s is dropped.
  - at most max_connections connections, at most max_connections_per_client from one
    address: a new connection over a limit evicts a connection that is only waiting (idle
    or an unfinished head) — one that never completed a request first, then the oldest —
    so idle or slow clients never lock the driver's page out; only if none can be evicted
    is the new one answered 503 and closed. The accept queue holds LISTEN_BACKLOG (1,024).
  - an error response caused by the request's framing (bad head, bad or too large
    Content-Length, body timeout) closes the connection: bytes we did not read are never
    parsed as a new request (request smuggling past the Origin/Host guards). Any other
    response is sent only after the body was read exactly, so keep-alive stays safe.
  - a response is one write (head + body) on a TCP_NODELAY socket: no Nagle/delayed-ACK
    stall on keep-alive requests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus

log = logging.getLogger("agent.hmi.http")

MAX_HEAD = 8192
LISTEN_BACKLOG = 1024
MAX_HEADERS = 64
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TARGET = re.compile(rb"/[\x21-\x7e]*")
_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])")
_DIGITS = re.compile(r"[0-9]{1,10}")


@dataclass(frozen=True)
class Limits:
    max_connections: int = 512
    max_connections_per_client: int = 384
    max_event_streams: int = 8
    max_body: int = 4096
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0
    write_timeout_s: float = 10.0
    workers: int = 4


class HttpError(Exception):
    """A request that cannot be answered normally; `close` = the framing is unknown."""

    def __init__(self, status: int, message: str, close: bool = True):
        super().__init__(message)
        self.status, self.message, self.close = status, message, close


@dataclass
class Request:
    method: str
    target: str
    version: tuple[int, int]
    headers: dict[str, str]
    body: bytes = b""
    peer: str = ""

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    @property
    def keep_alive(self) -> bool:
        conn = (self.header("connection") or "").lower()
        if self.version >= (1, 1):
            return "close" not in conn
        return "keep-alive" in conn


@dataclass
class Response:
    status: int
    body: bytes = b""
    ctype: str = "application/json"
    headers: dict = field(default_factory=dict)
    close: bool = False
    stream: bool = False          # server-sent events: the server keeps writing


def parse_head(raw: bytes) -> Request:
    """One request head (without the blank line) -> Request. Raises HttpError (always
    with close=True: after a bad head we cannot know where the next request starts)."""
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]):
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    m = _VERSION.fullmatch(version)
    if m is None:
        raise HttpError(400, "malformed request line")
    if m.group(1) != b"1":
        raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are served")
    if not _TARGET.fullmatch(target):
        raise HttpError(400, "request target must be an ASCII path")
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(431, f"more than {MAX_HEADERS} header lines")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            raise HttpError(400, "obsolete header line folding")
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.fullmatch(name):
            raise HttpError(400, "malformed header line")
        key = name.decode("ascii").lower()
        text = value.strip(b" \t").decode("latin-1")
        if any(c in text for c in "\x00\r\n"):
            raise HttpError(400, "control character in a header")
        if key in headers:
            if key in ("content-length", "host", "transfer-encoding", "x-trey-token", "content-type"):
                raise HttpError(400, f"duplicate {key} header")
            headers[key] += ", " + text
        else:
            headers[key] = text
    if "transfer-encoding" in headers:
        raise HttpError(501, "Transfer-Encoding is not supported; send Content-Length")
    return Request(method.decode("ascii"), target.decode("ascii"), (1, int(m.group(2))), headers)


def content_length(req: Request, max_body: int) -> int:
    """The body length to read; raises HttpError(close=True) for a bad or too large one."""
    text = req.header("content-length")
    if text is None:
        return 0
    if not _DIGITS.fullmatch(text):        # str.isdigit() accepts "²", int() does not
        raise HttpError(400, "bad Content-Length")
    n = int(text)
    if n > max_body:
        raise HttpError(413, f"body larger than {max_body} bytes")
    return n


def render(resp: Response, head_only: bool, keep_alive: bool) -> bytes:
    """Status line + headers + body as ONE buffer (one write: no Nagle stall)."""
    phrase = HTTPStatus(resp.status).phrase if resp.status in HTTPStatus._value2member_map_ else "Status"
    lines = [f"HTTP/1.1 {resp.status} {phrase}", "Server: trey-hmi/2", f"Content-Type: {resp.ctype}",
             "Cache-Control: no-store", "X-Content-Type-Options: nosniff"]
    if not resp.stream:
        lines.append(f"Content-Length: {len(resp.body)}")
    lines.append("Connection: keep-alive" if keep_alive and not resp.stream else "Connection: close")
    lines += [f"{k}: {v}" for k, v in resp.headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + resp.body


def error_response(status: int, message: str, extra: dict | None = None, close: bool = False) -> Response:
    body = json.dumps({"error": message, "status": status}).encode()
    return Response(status, body, "application/json", dict(extra or {}), close=close)


class _Conn:
    __slots__ = ("peer", "writer", "state", "since", "task", "served")

    def __init__(self, peer: str, writer):
        self.peer, self.writer = peer, writer
        self.state = "idle"            # idle | head | busy | stream | evicted
        self.since = time.monotonic()
        self.task = None
        self.served = 0                # requests answered on it

    def waiting(self) -> bool:
        return self.state in ("idle", "head")


class HttpServer:
    """The loop thread + worker pool. `handler(req) -> Response` runs on a worker thread;
    `streamer(req, conn_writer, closed_event)` (a coroutine) serves Response(stream=True).
    `counters` counts refused/evicted/timed-out connections for /api/health."""

    def __init__(self, sock: socket.socket, handler, streamer, limits: Limits, on_error=None):
        self.sock = sock
        self.handler = handler
        self.streamer = streamer
        self.limits = limits
        self.on_error = on_error or (lambda status: None)
        self.conns: dict[int, _Conn] = {}
        self.counters = {"connections": 0, "evicted": 0, "refused": 0, "timeouts": 0, "requests": 0}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._pool = ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="hmi-worker")
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._server = None

    # ---- lifecycle (called from other threads)
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hmi-http", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        # backlog again here: asyncio re-listens the socket (default 100, overflowed by a
        # burst of reconnects: a dropped SYN is retried only after 1 s).
        self._server = await asyncio.start_server(self._client, sock=self.sock, limit=MAX_HEAD,
                                                  backlog=LISTEN_BACKLOG)
        self._ready.set()
        await self._stopping.wait()
        self._server.close()
        for c in list(self.conns.values()):
            c.writer.transport.abort()
        tasks = [c.task for c in self.conns.values() if c.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def call(self, fn, *args) -> None:
        """Run fn(*args) on the loop thread (thread-safe; a stopped loop ignores it)."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:
                pass

    def stop(self) -> None:
        if self.loop is not None and self._ready.is_set():
            self.call(self._stopping.set)
        if self._thread is not None:
            self._thread.join(3.0)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- admission
    def _admit(self, me: _Conn) -> bool:
        lim = self.limits
        live = [c for c in self.conns.values() if c is not me and c.state != "evicted"]
        mine = [c for c in live if c.peer == me.peer]
        if len(mine) >= lim.max_connections_per_client and not self._evict(mine):
            return False
        live = [c for c in live if c.state != "evicted"]
        if len(live) >= lim.max_connections and not self._evict(live):
            return False
        return True

    def _evict(self, pool: list[_Conn]) -> bool:
        """Close the connection that costs most and serves least: waiting ones only, those
        that never completed a request (idle hogs, slowloris) before any that did (the
        page's keep-alive connection), oldest first."""
        waiting = [c for c in pool if c.waiting()]
        if not waiting:
            return False
        victim = min(waiting, key=lambda c: (c.served > 0, c.since))
        victim.state = "evicted"
        victim.writer.transport.abort()
        self.counters["evicted"] += 1
        return True

    # ---- one connection
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        conn = _Conn(str(peer[0]) if peer else "?", writer)
        conn.task = asyncio.current_task()
        key = id(conn)
        self.conns[key] = conn
        self.counters["connections"] += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        try:
            if not self._admit(conn):
                self.counters["refused"] += 1
                self.on_error(503)
                await self._write(conn, render(error_response(503, "too many connections", {"Retry-After": "1"}),
                                               False, False))
                return
            await self._requests(conn, reader)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("HMI connection from %s failed", conn.peer)
        finally:
            self.conns.pop(key, None)
            try:
                writer.transport.abort() if conn.state == "evicted" else writer.close()
            except Exception:
                pass

    async def _read_head(self, conn: _Conn, reader, buf: bytearray) -> bytes | None:
        """-> the head (bytes before the blank line), None on a clean EOF/idle timeout."""
        lim = self.limits
        conn.state, conn.since = "idle", time.monotonic()
        deadline = None
        while True:
            end = _head_end(buf)
            if end is not None and end[0] > MAX_HEAD:
                raise HttpError(431, f"request head larger than {MAX_HEAD} bytes")
            if end is not None:
                head, rest = bytes(buf[:end[0]]), buf[end[1]:]
                buf[:] = rest
                return head
            if len(buf) > MAX_HEAD:
                raise HttpError(431, f"request head larger than {MAX_HEAD} bytes")
            timeout = lim.idle_timeout_s if deadline is None else deadline - time.monotonic()
            if timeout <= 0:
                raise TimeoutError
            chunk = await asyncio.wait_for(reader.read(4096), timeout)
            if not chunk:
                if buf.strip():
                    raise HttpError(400, "connection closed inside a request head")
                return None
            if deadline is None:
                deadline = time.monotonic() + lim.header_timeout_s
                conn.state = "head"
            buf += chunk
            if buf[:1] in (b"\r", b"\n"):     # stray blank lines before a request are allowed
                buf[:] = buf.lstrip(b"\r\n")
                if not buf:
                    deadline, conn.state = None, "idle"

    async def _requests(self, conn: _Conn, reader) -> None:
        buf = bytearray()
        lim = self.limits
        while True:
            try:
                head = await self._read_head(conn, reader, buf)
            except TimeoutError:
                self.counters["timeouts"] += 1
                return
            except HttpError as exc:
                return await self._fail(conn, exc)
            if head is None:
                return
            conn.state = "busy"
            try:
                req = parse_head(head)
                n = content_length(req, lim.max_body)
                while len(buf) < n:
                    chunk = await asyncio.wait_for(reader.read(n - len(buf)), lim.body_timeout_s)
                    if not chunk:
                        return
                    buf += chunk
            except HttpError as exc:
                return await self._fail(conn, exc)
            except TimeoutError:
                self.counters["timeouts"] += 1
                return await self._fail(conn, HttpError(408, "request body not received in time"))
            req.body, buf[:] = bytes(buf[:n]), buf[n:]
            req.peer = conn.peer
            self.counters["requests"] += 1
            try:
                resp = await asyncio.get_running_loop().run_in_executor(self._pool, self.handler, req)
            except RuntimeError:              # pool shut down: we are stopping
                return
            keep = req.keep_alive and not resp.close
            head_only = req.method == "HEAD"
            if resp.stream and not head_only:
                conn.state = "stream"
                await self._write(conn, render(resp, False, False))
                await self.streamer(req, conn.writer, reader)
                return
            await self._write(conn, render(resp, head_only, keep))
            conn.served += 1
            if not keep or resp.stream:
                return

    async def _fail(self, conn: _Conn, exc: HttpError) -> None:
        self.on_error(exc.status)
        await self._write(conn, render(error_response(exc.status, exc.message), False, False))

    async def _write(self, conn: _Conn, data: bytes) -> None:
        conn.writer.write(data)
        try:
            await asyncio.wait_for(conn.writer.drain(), self.limits.write_timeout_s)
        except TimeoutError:
            self.counters["timeouts"] += 1
            raise ConnectionError("client does not read") from None


def _head_end(buf: bytearray) -> tuple[int, int] | None:
    """(end of head, start of body) for CRLF CRLF or a bare LF LF, whichever comes first."""
    a, b = buf.find(b"\r\n\r\n"), buf.find(b"\n\n")
    if a < 0 and b < 0:
        return None
    if b < 0 or (0 <= a < b):
        return a, a + 4
    return b, b + 2
