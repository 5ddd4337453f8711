"""A lean HTTP/1.1 server on asyncio protocols and httptools: the gateway's hot path.

Why not a framework: a request through aiohttp's web server costs several times what the
proxying itself costs (docs/gateway.md); this server does only what
the gateway needs - parse a request, hand it to one handler, write one response in one
``transport.write`` (or a chunked stream), keep the connection alive.

Contract for handlers: ``handler(request, responder)`` is awaited once per request, in
order per connection (pipelined requests wait their turn). It must answer through the
responder exactly once (``send``), or stream (``start``, ``write``..., ``end``). If the
client disconnects, the handler task is cancelled (``asyncio.CancelledError`` inside the
handler); ``Responder.write`` raises ``ConnectionResetError`` on a closed connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import httptools

__all__ = ["Handler", "HttpServerProtocol", "Request", "Responder", "serve"]

log = logging.getLogger(__name__)

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Request:
    """One parsed request. ``headers`` has lower-cased names; ``body`` is the whole body."""

    __slots__ = ("body", "body_too_large", "headers", "keep_alive", "method", "path", "query")

    def __init__(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes,
                 keep_alive: bool, body_too_large: bool) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.body_too_large = body_too_large


Handler = Callable[[Request, "Responder"], Awaitable[None]]


class Responder:
    """Writes the answer to one request."""

    __slots__ = ("_chunked", "_proto", "keep_alive", "started", "status")

    def __init__(self, proto: HttpServerProtocol, keep_alive: bool) -> None:
        self._proto = proto
        self.keep_alive = keep_alive
        self.started = False
        self.status = 0
        self._chunked = False

    def _head(self, status: int, headers: list[tuple[str, str]], extra: bytes) -> bytes:
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))]
        for k, v in headers:
            lines.append(b"%s: %s\r\n" % (k.encode("latin-1"), v.encode("latin-1")))
        if not self.keep_alive:
            lines.append(b"Connection: close\r\n")
        lines.append(extra)
        return b"".join(lines)

    def send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        """The whole response in one write. ``headers`` must include Content-Type."""
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self.status = status
        self._proto.write(self._head(status, headers, b"Content-Length: %d\r\n\r\n" % len(body)) + body)

    def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        """Begin a chunked response (for SSE)."""
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self.status = status
        self._chunked = True
        self._proto.write(self._head(status, headers, b"Transfer-Encoding: chunked\r\n\r\n"))

    async def write(self, data: bytes) -> None:
        """One chunk of a started response; waits while the client reads slower than we write."""
        if data:
            self._proto.write(b"%x\r\n%s\r\n" % (len(data), data))
            await self._proto.drain()

    def end(self) -> None:
        if self._chunked:
            self._proto.write(b"0\r\n\r\n")
            self._chunked = False


class HttpServerProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, handler: Handler, max_body_bytes: int, idle_timeout_s: float = 75.0) -> None:
        self._handler = handler
        self._max_body = max_body_bytes
        self._idle_timeout_s = idle_timeout_s
        self._idle: asyncio.TimerHandle | None = None
        self._last_activity = 0.0
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._queue: deque[Request] = deque()
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_len = 0
        self._too_large = False

    # -- transport callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._arm_idle()

    def _arm_idle(self) -> None:
        """Start the idle check; it re-arms itself for as long as the connection is in use."""
        self._last_activity = self._loop.time()
        self._idle = self._loop.call_later(self._idle_timeout_s, self._idle_check)

    def _idle_check(self) -> None:
        """Close the connection if no request was served or received for ``idle_timeout_s``."""
        if self.closed or self._transport is None:
            return
        left = self._last_activity + self._idle_timeout_s - self._loop.time()
        if self._task is not None or left > 0:
            self._idle = self._loop.call_later(max(left, 0.05 * self._idle_timeout_s), self._idle_check)
        else:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        self._last_activity = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(400, b"upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._reject(400, f"malformed HTTP request: {exc}".encode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._idle is not None:
            self._idle.cancel()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._wake_drain(ConnectionResetError("client disconnected"))

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_drain(None)

    # -- parser callbacks -----------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body:
            self._too_large = True
        elif self._headers.get("expect", "").lower() == "100-continue" and self._transport is not None:
            self._transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        if self._too_large:
            return
        self._body_len += len(body)
        if self._body_len > self._max_body:
            self._too_large = True
            self._body.clear()
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        url = self._url
        q = url.find(b"?")
        path, query = (url, b"") if q < 0 else (url[:q], url[q + 1 :])
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        req = Request(self._parser.get_method().decode("latin-1"), path.decode("latin-1"),
                      query.decode("latin-1"), self._headers, body, self._parser.should_keep_alive(),
                      self._too_large)
        self._reset()
        if self._task is None:
            self._task = self._loop.create_task(self._serve(req))
        else:
            self._queue.append(req)

    # -- serving -------------------------------------------------------------------------------

    async def _serve(self, req: Request) -> None:
        while True:
            responder = Responder(self, req.keep_alive)
            try:
                await self._handler(req, responder)
            except asyncio.CancelledError:
                return
            except (ConnectionResetError, BrokenPipeError):
                return
            except Exception:
                log.exception("unhandled error serving %s %s", req.method, req.path)
                if not responder.started:
                    responder.keep_alive = False
                    responder.send(500, b'{"error":{"message":"internal error","type":"server_error",'
                                        b'"param":null,"code":"internal_error"}}',
                                   [("Content-Type", "application/json")])
                else:
                    responder.keep_alive = False
            if not responder.keep_alive or self.closed:
                if self._transport is not None:
                    self._transport.close()
                self._task = None
                return
            if not self._queue:
                self._task = None
                self._last_activity = self._loop.time()
                return
            req = self._queue.popleft()

    def write(self, data: bytes) -> None:
        if self.closed or self._transport is None:
            raise ConnectionResetError("client disconnected")
        self._transport.write(data)

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("client disconnected")
        if not self._paused:
            return
        waiter = self._loop.create_future()
        self._drain_waiter = waiter
        await waiter

    def _wake_drain(self, exc: Exception | None) -> None:
        w, self._drain_waiter = self._drain_waiter, None
        if w is not None and not w.done():
            if exc is None:
                w.set_result(None)
            else:
                w.set_exception(exc)

    def _reject(self, status: int, message: bytes) -> None:
        if self._transport is not None and not self.closed:
            body = b'{"error":{"message":"%s","type":"invalid_request_error","param":null,"code":null}}' % (
                message.replace(b'"', b"'"))
            self._transport.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                                  b"Connection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body))
            self._transport.close()


async def serve(handler: Handler, host: str, port: int, *, max_body_bytes: int,
                idle_timeout_s: float = 75.0, backlog: int = 1024) -> asyncio.base_events.Server:
    """Start listening; returns the asyncio server (``close()`` + ``wait_closed()`` to stop).

    A connection with no request in progress for ``idle_timeout_s`` is closed.
    """
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: HttpServerProtocol(handler, max_body_bytes, idle_timeout_s),
                                    host, port, backlog=backlog, reuse_address=True)
