"""A lean HTTP/1.1 server on asyncio protocols and httptools: the gateway's hot path.

Why not a framework: a request through aiohttp's web server costs several times what the
proxying itself costs (docs/gateway.md); this server does only what
the gateway needs - parse a request, hand it to one handler, write one response in one
``transport.write`` (or a chunked stream), keep the connection alive.

Contract for handlers: ``handler(request, responder)`` is awaited once per request, in
order per connection (pipelined requests wait their turn, and reading pauses while one
waits), in one task per connection (made for its first request, waiting between requests).
It must answer through the responder exactly once (``send``), or stream (``start``,
``write``..., ``end``). If the client disconnects, the handler task is cancelled
(``asyncio.CancelledError`` inside the handler); ``Responder.write`` raises
``ConnectionResetError`` on a closed connection.

What never reaches a handler (answered here, in OpenAI's error shape, then the connection is
closed): malformed requests and smuggling attempts (400, httptools/llhttp in strict mode),
heads over the :class:`~inferplane.gateway.http_limits.HttpLimits` (414, 431), heads not
complete in time (408), bodies over the limit (413, as soon as it is known - before
``100 Continue``), unknown transfer codings (501), too many pipelined requests (429), and
connections over the cap (503). Such an answer waits for the responses to the requests
before it on the connection; then the server stops writing and reads (and drops) what the
client still sends for a moment, so that the answer is not lost to a TCP reset.

Memory: nothing of a connection outlives it. The parser holds the protocol's bound methods
(a reference cycle), and ``serve`` freezes the GC with high thresholds, so the cycle
collector may never run: ``connection_lost`` drops the parser, the buffers, the queue and
the task itself (cancelled: it waits for the next request while none is in progress).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl as ssl_module
from collections import deque
from time import time as _time

import httptools

from inferplane.gateway.http_limits import HttpLimits, Refused, ServerState, peek_head
from inferplane.gateway.http_messages import REASONS, Handler, Request, Responder
from inferplane.protocol.errors import error_body

__all__ = ["Handler", "HttpLimits", "HttpServerProtocol", "Request", "Responder", "serve", "server_tls_context"]

log = logging.getLogger(__name__)

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_LINGER_S = 3.0
"""After an error answer, how long the client's further bytes are read and dropped before closing."""
_SINGLE = frozenset({"authorization", "host"})
"""Headers that must not repeat: two of them are a 400, not a guess at which one counts."""
_ERROR_TYPES = {408: "invalid_request_error", 429: "rate_limit_error", 503: "service_unavailable"}


class _Stop(Exception):
    """Raised from a parser callback after ``_fail`` to make httptools stop parsing this input."""


class HttpServerProtocol(asyncio.Protocol):
    """One client connection. Not thread-safe (event-loop callbacks only)."""

    def __init__(self, handler: Handler, state: ServerState) -> None:
        self._handler = handler
        self.state = state
        self._limits = state.limits
        self._max_line = state.limits.max_header_line_bytes
        self._max_count = state.limits.max_header_count
        self._max_fields_bytes = state.limits.max_head_bytes - 16  # the request line takes at least that
        self._tick_s = min(state.limits.head_timeout_s, state.limits.idle_timeout_s)
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self._queue: deque[Request] = deque()
        self._task: asyncio.Task[None] | None = None
        """The connection's serving task (``_serve``), from its first request on."""
        self._busy = False  # a request is being served (queued ones wait in ``_queue``)
        self._next: asyncio.Future[Request] | None = None  # what the idle serving task waits on
        self._write_paused = False
        self._read_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._last_activity = 0.0
        self._head_deadline: float | None = None
        self._failure: tuple[int, str, str] | None = None  # (status, message, code) owed to the client
        self._failing = False  # that answer is written: drop all input until closed
        self._counted = False
        self._unreported = False  # refused at the connection cap; the hook not told yet
        self._continue_owed = False
        self._in_head = False
        self._in_body = False
        self._boundary = False  # a head began or ended during the current feed
        self._head_bytes = 0
        self._body_wire = 0
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_len = 0

    # -- transport callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        state = self.state
        if state.connections >= self._limits.max_connections:
            self._failure = (503, f"the gateway has {state.connections} open connections, its limit; retry "
                             "shortly", "too_many_connections")
            self._send_failure(b"Retry-After: 1\r\n", linger_s=1.0)
            self._unreported = state.on_refused is not None  # told once the request's head shows its route
            return
        state.connections += 1
        self._counted = True
        now = self._last_activity = self._loop.time()
        self._head_deadline = now + self._limits.head_timeout_s
        self._timer = self._loop.call_at(now + self._tick_s, self._on_timer)

    def _on_timer(self) -> None:
        """Enforce the head deadline and the idle timeout; re-arms itself at most ``_tick_s`` ahead,
        so that starting a new head never needs an earlier timer (no per-request timer churn)."""
        self._timer = None
        if self.closed or self._failing:
            return
        now = self._loop.time()
        due = now + self._tick_s
        if not self._busy:
            lim = self._limits
            if self._head_deadline is not None:
                if now >= self._head_deadline:
                    self._fail(408, f"the request head was not complete within {lim.head_timeout_s:g} s",
                               "request_timeout")
                    return
                due = min(due, self._head_deadline)
            else:
                idle_end = self._last_activity + lim.idle_timeout_s
                if now >= idle_end:
                    if self._in_body:
                        self._fail(408, f"no request body bytes for {lim.idle_timeout_s:g} s", "request_timeout")
                    elif self._transport is not None:
                        self._transport.close()
                    return
                due = min(due, idle_end)
        self._timer = self._loop.call_at(due, self._on_timer)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None or self._failing or self._failure is not None:
            if self._unreported:
                self._report_refused_connection(data)
            return  # answered with an error (or paused until it is): the rest is dropped
        self._last_activity = self._loop.time()
        self._boundary = False
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "upgrades are not supported", "invalid_request")
            return
        except httptools.HttpParserError as exc:
            self._fail(400, f"malformed HTTP request: {exc}", "invalid_request")  # no-op after a callback's _fail
            return
        # What a partial head or body holds inside httptools is counted by the bytes that fed it
        # (a feed in which a head began or ended is left out: it may hold other requests).
        if self._in_head:
            if not self._boundary:
                self._head_bytes += len(data)
                if self._head_bytes > self._limits.max_head_bytes:
                    self._fail(431, f"the request head is larger than {self._limits.max_head_bytes} bytes",
                               "request_header_too_large")
        elif self._in_body and not self._boundary:
            self._body_wire += len(data)
            if self._body_wire > self._limits.max_body_wire_bytes:
                self._fail(413, f"the request body is larger than {self._limits.max_body_bytes} bytes",
                           "request_too_large")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._counted:
            self._counted = False
            self.state.connections -= 1
        for timer in (self._timer, self._linger):
            if timer is not None:
                timer.cancel()
        self._timer = self._linger = None
        task, self._task = self._task, None
        self._next = None
        if task is not None and not task.done():
            task.cancel()
        # Break every link from this connection's objects back to it: the parser holds our bound
        # methods, and the cycle collector may not run for a long time (gc.freeze + thresholds).
        self._parser = None
        self._transport = None
        self._queue.clear()
        self._reset()
        self._wake_drain()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain()

    # -- parser callbacks -----------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        if not self._in_head:  # the first piece of a new request (cheaper than an on_message_begin callback)
            self._in_head = True
            self._boundary = True
            self._head_bytes = 0
            if self._head_deadline is None:
                self._head_deadline = self._last_activity + self._limits.head_timeout_s
            self._url = url
        else:
            self._url += url
        if len(self._url) > self._limits.max_url_bytes:
            self._fail(414, f"the request target is longer than {self._limits.max_url_bytes} bytes", "uri_too_long")
            raise _Stop

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # a chunked body's trailer: never a request header
        size = len(name) + len(value)
        self._header_bytes += size + 4
        if size > self._max_line or self._header_bytes > self._max_fields_bytes:
            self._header_over_limit(name, size)
        key = name.decode("latin-1").lower()
        value = value.rstrip(b" \t")  # llhttp drops the whitespace before a value, not after it (RFC 9110 5.5)
        headers = self._headers
        if key in headers:
            if key in _SINGLE:
                self._fail(400, f"the request has more than one {key!r} header", "invalid_request")
                raise _Stop
            headers[key] = f"{headers[key]}, {value.decode('latin-1')}"
        else:
            headers[key] = value.decode("latin-1")

    def _header_over_limit(self, name: bytes, size: int) -> None:
        """Raise _Stop (after ``_fail``) for the limit a header field broke; return if none was."""
        lim = self._limits
        if size > lim.max_header_line_bytes:
            key = name[:64].decode("latin-1").lower()
            self._fail(431, f"the header {key!r} is longer than {lim.max_header_line_bytes} bytes",
                       "request_header_too_large")
        elif self._header_bytes + len(self._url) > lim.max_head_bytes:
            self._fail(431, f"the request head is larger than {lim.max_head_bytes} bytes", "request_header_too_large")
        else:
            return  # within the head budget once the URL is counted exactly
        raise _Stop

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._in_body = True
        self._boundary = True
        self._head_deadline = None
        self._body_wire = 0
        headers = self._headers
        if len(headers) > self._max_count:  # checked here: the head's byte limit already bounded the work
            self._fail(431, f"the request has more than {self._max_count} header fields", "request_header_too_large")
            raise _Stop
        coding = headers.get("transfer-encoding")
        if coding is not None and coding.lower() != "chunked":
            self._fail(501, f"Transfer-Encoding {coding[:64]!r} is not supported; send the body as is or "
                       "chunked", "unsupported_transfer_encoding")
            raise _Stop
        length = headers.get("content-length")
        if length is not None and int(length) > self._limits.max_body_bytes:  # llhttp checked the digits
            self._fail(413, f"the request body ({length} bytes) is larger than the limit of "
                       f"{self._limits.max_body_bytes} bytes", "request_too_large")
            raise _Stop
        if headers.get("expect", "").lower() == "100-continue":
            if not self._busy and self._transport is not None:
                self._transport.write(_CONTINUE)
            else:
                self._continue_owed = True  # after the response in progress, never inside it

    def on_body(self, body: bytes) -> None:
        self._body_len += len(body)
        if self._body_len > self._limits.max_body_bytes:
            self._fail(413, f"the request body is larger than the limit of {self._limits.max_body_bytes} bytes",
                       "request_too_large")
            raise _Stop
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        self._boundary = True
        parser = self._parser
        assert parser is not None  # only called from inside feed_data
        url = self._url
        if url and url[0] != 0x2F and url.startswith((b"http://", b"https://")):  # absolute-form (RFC 9112 3.2.2)
            slash = url.find(b"/", url.index(b"//") + 2)
            url = b"/" if slash < 0 else url[slash:]
        q = url.find(b"?")
        path, query = (url, b"") if q < 0 else (url[:q], url[q + 1 :])
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        req = Request(parser.get_method().decode("latin-1"), path.decode("latin-1"), query.decode("latin-1"),
                      self._headers, body, parser.should_keep_alive(), parser.get_http_version())
        if not self._busy:
            self._reset()
            self._busy = True
            waiter, self._next = self._next, None
            if waiter is not None:  # the serving task waits for it: ~2k instructions, a new task ~7k
                waiter.set_result(req)
            else:
                self._task = self._loop.create_task(self._serve(req))
            return
        if len(self._queue) >= self._limits.max_pipelined_requests:
            # before _reset: the refused-request hook reads this request's path and headers
            self._fail(429, f"more than {self._limits.max_pipelined_requests} pipelined requests wait on this "
                       "connection; send the rest on another one", "too_many_pipelined_requests")
            raise _Stop
        self._reset()
        self._queue.append(req)
        self._pause_reading()

    # -- serving -------------------------------------------------------------------------------

    async def _serve(self, req: Request) -> None:
        """Serve ``req``, the requests queued behind it, then each next one, until the
        connection closes (``connection_lost`` cancels the task while it waits)."""
        while True:
            responder = Responder(self, req.keep_alive, req.http_version == "1.0", req.method == "HEAD")
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
                    responder.send(500, error_body("internal error", "server_error", code="internal_error"),
                                   [("Content-Type", "application/json")])
                else:
                    responder.keep_alive = False
            if self.closed:
                return
            if not responder.keep_alive:
                self._busy = False
                self._task = None
                if self._transport is not None:
                    self._transport.close()
                return
            if self._queue:
                req = self._queue.popleft()
                if not self._queue:
                    self._resume_reading()
                continue
            self._busy = False
            self._last_activity = self._loop.time()
            if self._failure is not None:
                self._task = None
                self._send_failure()
                return
            if self._continue_owed and self._transport is not None:
                self._transport.write(_CONTINUE)
            self._continue_owed = False
            waiter = self._next = self._loop.create_future()  # before reading resumes (the next request)
            self._resume_reading()
            req = await waiter

    def write(self, data: bytes) -> bool:
        """Write ``data`` now; True when the client's buffer is full (``drain`` before more)."""
        if self.closed or self._transport is None:
            raise ConnectionResetError("client disconnected")
        self._transport.write(data)  # pause_writing, if it fills the buffer, is called from inside
        return self._write_paused

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("client disconnected")
        if not self._write_paused:
            return
        # The waiter only ever gets a result, never an exception: an exception stored in it would
        # hold this frame through its traceback, a cycle the frozen GC may never collect.
        waiter = self._loop.create_future()
        self._drain_waiter = waiter
        await waiter
        if self.closed:
            raise ConnectionResetError("client disconnected")

    def _wake_drain(self) -> None:
        w, self._drain_waiter = self._drain_waiter, None
        if w is not None and not w.done():
            w.set_result(None)

    def _pause_reading(self) -> None:
        if not self._read_paused and not self.closed and self._transport is not None:
            self._read_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused and not self.closed and self._transport is not None:
            self._read_paused = False
            self._transport.resume_reading()

    # -- errors answered by the server itself -------------------------------------------------------

    def _fail(self, status: int, message: str, code: str) -> None:
        """Owe the client an error answer and close: now, or after the responses before it."""
        if self._failure is not None or self._failing:
            return
        self._failure = (status, message, code)
        hook = self.state.on_refused
        if hook is not None:
            url = self._url
            q = url.find(b"?")
            try:
                hook((url if q < 0 else url[:q]).decode("latin-1"), self._headers, status, code)
            except Exception:
                log.exception("the refused-request hook failed")
        if not self._busy:
            self._send_failure()
        else:
            self._pause_reading()

    def _report_refused_connection(self, data: bytes) -> None:
        """A connection over the cap got its 503 at once; tell the refused-request hook which
        request it refused, from the head the client sent anyway. A connection that sends nothing
        before the close is no request and is not told of."""
        self._unreported = False
        hook = self.state.on_refused
        head = peek_head(data, self._limits)
        if hook is None or head is None or self._failure is None:
            return
        try:
            hook(head[0], head[1], self._failure[0], self._failure[2])
        except Exception:
            log.exception("the refused-request hook failed")

    def _send_failure(self, extra: bytes = b"", linger_s: float = _LINGER_S) -> None:
        assert self._failure is not None
        status, message, code = self._failure
        self._failing = True
        self._reset()
        transport = self._transport
        if self.closed or transport is None:
            return
        transport.write(self._error_bytes(status, message, code, extra))
        # Lingering close (as nginx does): stop writing, drop what the client still sends, then close;
        # closing at once with unread input makes the kernel reset the connection, and many clients
        # then report the reset instead of this answer.
        self._read_paused = True
        self._resume_reading()
        if transport.can_write_eof():
            transport.write_eof()
            self._linger = self._loop.call_later(linger_s, transport.close)
        else:
            transport.close()

    def _error_bytes(self, status: int, message: str, code: str, extra: bytes = b"") -> bytes:
        body = error_body(message, _ERROR_TYPES.get(status, "invalid_request_error"), code=code)
        self.state.refresh_date(_time())
        return b"HTTP/1.1 %d %s\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n%sConnection: close\r\n" \
               b"\r\n%s" % (status, REASONS[status], self.state.date, len(body), extra, body)

    def eof_received(self) -> bool | None:
        """The client closed its side: it is gone. Close now, which cancels the request in
        progress (held, waiting for a first byte or streaming: the upstream request is aborted and
        its slot freed) and ends a lingering close early. Like uvicorn and nginx (without
        ``proxy_ignore_client_abort``), a half-close is not kept open for an answer: with LLM
        requests that run for minutes, a client that left must not keep a replica busy."""
        return None


async def serve(handler: Handler, host: str, port: int, *, limits: HttpLimits | None = None,
                max_body_bytes: int | None = None, idle_timeout_s: float | None = None,
                backlog: int = 1024, on_refused: Refused | None = None,
                ssl: ssl_module.SSLContext | None = None,
                reuse_port: bool = False) -> asyncio.base_events.Server:
    """Start listening; returns the asyncio server (``close()`` + ``wait_closed()`` to stop).

    ``limits`` bounds what clients may send (defaults: :class:`HttpLimits`); ``max_body_bytes``
    and ``idle_timeout_s``, when given, override those two fields of it. ``on_refused`` is
    told of each request the server answers itself (``gateway.refused``, for the observers).
    ``ssl``: serve HTTP/1.1 over TLS with this server context (asyncio's TLS transport; the
    protocol is the same, a client's half-close included - TLS has none, its close_notify ends
    the connection). The TLS handshake must finish within ``limits.head_timeout_s``.
    ``reuse_port``: bind with SO_REUSEPORT, so several processes (``serve --workers``) share
    the port and the kernel spreads connections over them.
    """
    lim = limits or HttpLimits()
    if max_body_bytes is not None:
        lim = dataclasses.replace(lim, max_body_bytes=max_body_bytes)
    if idle_timeout_s is not None:
        lim = dataclasses.replace(lim, idle_timeout_s=idle_timeout_s)
    state = ServerState(lim, on_refused)
    loop = asyncio.get_running_loop()
    if ssl is None:
        return await loop.create_server(lambda: HttpServerProtocol(handler, state), host, port, backlog=backlog,
                                        reuse_address=True, reuse_port=reuse_port or None)
    return await loop.create_server(lambda: HttpServerProtocol(handler, state), host, port, backlog=backlog,
                                    reuse_address=True, reuse_port=reuse_port or None, ssl=ssl,
                                    ssl_handshake_timeout=lim.head_timeout_s)


def server_tls_context(cert_file: str, key_file: str) -> ssl_module.SSLContext:
    """A server TLS context for the listener (TLS 1.2+, HTTP/1.1 offered by ALPN).

    Raises OSError or ssl.SSLError when the files cannot be loaded.
    """
    ctx = ssl_module.create_default_context(ssl_module.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl_module.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.load_cert_chain(cert_file, key_file)
    return ctx
