"""A lean keep-alive HTTP/1.1 client for the proxy's upstream requests (asyncio + httptools).

One ``UpstreamPool`` per gateway holds, per upstream base URL, a stack of idle
connections. A request is written in one ``transport.write``; the response's headers
are awaited; its body is read whole (``read``) or handed on as it arrives (``forward``:
from the connection's data callback, one call per socket read, with no task switch per
chunk), chunked transfer-encoding already decoded by httptools.

Errors (all ``UpstreamError``):
- ``StaleConnection``: a reused keep-alive connection was closed by the server before
  any byte of the response came back - the request can be resent on a fresh connection.
- ``ConnectFailed``: no TCP connection could be made (``TlsFailed``: nor a TLS session on it -
  the certificate did not verify, the handshake failed; the message says which and what to set).
- ``UpstreamBroken``: the connection broke after the response had started.
- ``UpstreamTimeout``: no response headers within the first-byte wait, or (``UpstreamStalled``)
  no body bytes for too long in the middle of a stream.
- ``UpstreamTooLarge``: a body read whole grew past the pool's ``max_body_bytes``.

Memory: a body read whole is capped (``max_body_bytes``); a forwarded body is held back by
pausing the socket while the consumer says its client is full (and while more than
``_HIGH_WATER`` bytes wait), so an upstream cannot make the gateway buffer without bound
either way.

``https://`` upstreams: TLS through the base URL's ``UpstreamAccess`` (its ``ssl.SSLContext``,
the URL's host name checked and sent as SNI); its credential header, if any, is part of every
request head, prepared once per base URL. Plain ``http://`` requests are built as before.

Transport seam: ``UpstreamPool(connect=...)`` replaces how a connection is made (by default
``loop.create_connection``); tests pass :class:`~inferplane.gateway.memory_transport.MemoryConnector`,
which answers in-process with no sockets, through the same HTTP parser (and no TLS).

Headers a client may need (``retry-after``, ``x-ratelimit-*``, the runtime's
``x-request-id``) are kept on the response (``passed_headers``); the rest are dropped.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httptools

from inferplane.errors import InferplaneError
from inferplane.runtimes.access import PLAIN, UpstreamAccess, describe_tls_error, tls_context

__all__ = ["ConnectFailed", "Connector", "StaleConnection", "TlsFailed", "UpstreamBroken", "UpstreamError",
           "UpstreamPool",
           "UpstreamResponse", "UpstreamStalled", "UpstreamTimeout", "UpstreamTooLarge"]

Connector = Callable[[Callable[[], asyncio.Protocol], str, int],
                     Awaitable[tuple[asyncio.BaseTransport, asyncio.Protocol]]]
"""Makes one connection: ``(protocol_factory, host, port) -> (transport, protocol)``; raises OSError."""

_HIGH_WATER = 1 << 20
"""Streamed bytes waiting for the client above which the upstream socket is paused."""

Sink = Callable[[bytes], bool]
"""Takes forwarded body bytes; True: its client is full, send no more until it drained."""


class UpstreamError(InferplaneError):
    """Talking to an upstream failed."""


class StaleConnection(UpstreamError):
    """A kept-alive connection was already dead; nothing was answered."""


class ConnectFailed(UpstreamError):
    """The TCP connection could not be made."""


class TlsFailed(ConnectFailed):
    """The TCP connection was made, the TLS session was not (certificate, handshake)."""


class UpstreamBroken(UpstreamError):
    """The connection broke mid-response."""


class UpstreamTimeout(UpstreamError):
    """No response status within the first-byte timeout."""


class UpstreamStalled(UpstreamTimeout):
    """A started stream sent nothing for longer than its idle timeout (or its replica froze)."""


class UpstreamTooLarge(UpstreamError):
    """A body read whole was larger than the pool's limit."""


_PASSED = {b"retry-after": "retry-after", b"x-request-id": "x-upstream-request-id"}
"""Upstream headers passed to the client (with the name the client sees), besides x-ratelimit-*."""


class _Conn(asyncio.Protocol):
    """One upstream connection; serves one request at a time."""

    def __init__(self, pool: _HostPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self.paused = False
        self._resp: UpstreamResponse | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._resp is not None:
            self._resp._lost()

    def data_received(self, data: bytes) -> None:
        if self._resp is None:  # bytes while idle: the server is confused; drop the connection
            self.close()
            return
        resp = self._resp
        resp.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            resp._fail(UpstreamBroken(f"malformed response: {exc}"))
            self.close()
        if resp._sink is not None and resp._buf:  # forwarding: this read's pieces go on now, joined
            resp._forward()

    # parser callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        resp = self._resp
        if resp is None:
            return
        name = name.lower()
        if name == b"content-type":
            resp.content_type = value.decode("latin-1")
        elif name in _PASSED or name.startswith(b"x-ratelimit-"):
            resp.passed_headers.append((_PASSED.get(name) or name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        if self._resp is not None:
            self._resp._headers_done(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        resp = self._resp
        if resp is not None:  # per chunk of a stream: UpstreamResponse's buffer filled here, one call less
            resp._buf.append(body)
            resp._buffered += len(body)
            if resp._sink is None:  # when forwarding, ``data_received`` hands the pieces on after the read
                if resp._waiter is not None:  # ``_wake``'s call only for a reader waiting (a whole body's
                    resp._wake()  # pieces mostly come in the read its headers came in, before ``read`` waits)
                if resp._streaming and resp._buffered > _HIGH_WATER:  # the client is full
                    self.pause()

    def pause(self) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()

    def on_message_complete(self) -> None:
        resp = self._resp
        if resp is not None:
            resp._complete(self.parser.should_keep_alive())

    def send(self, data: bytes, max_body_bytes: int) -> UpstreamResponse:
        """Write one request; returns its response. The write comes first, the response is made
        after it: nothing of the answer can arrive before the caller yields to the event loop, and
        the request reaches the upstream that much sooner. The parser goes on from the last
        response: a connection is reused only after a response that ended cleanly
        (``UpstreamResponse.release``), where llhttp starts the next message as a new one."""
        assert self.transport is not None
        self.transport.write(data)
        resp = self._resp = UpstreamResponse(self, max_body_bytes)
        return resp

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamResponse:
    """The answer to one upstream request. Call ``release()`` (keep the connection) when read
    to the end, or ``close()`` (drop it) otherwise; both are idempotent. As a context manager
    (``with resp:``) it is closed on the way out unless it was released first, so no path
    (an exception, a cancellation) leaves the connection open and the runtime generating."""

    __slots__ = ("_buf", "_buffered", "_conn", "_done", "_error", "_headers_fut", "_keep_alive", "_last_data",
                 "_max_body", "_now", "_reads", "_sink", "_sink_error", "_streaming", "_waiter", "content_type",
                 "got_bytes", "passed_headers", "status")

    def __init__(self, conn: _Conn, max_body_bytes: int) -> None:
        self._conn: _Conn | None = conn
        loop = asyncio.get_running_loop()
        self._headers_fut: asyncio.Future[int] = loop.create_future()
        self._now = loop.time
        self._buf: list[bytes] = []
        self._buffered = 0
        self._max_body = max_body_bytes
        self._last_data = 0.0
        self._reads = 0
        self._streaming = False
        self._sink: Sink | None = None
        self._sink_error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._done = False
        self._keep_alive = False
        self._error: UpstreamError | None = None
        self.status = 0
        self.content_type = "application/json"
        self.got_bytes = False
        self.passed_headers: list[tuple[str, str]] = []

    def __enter__(self) -> UpstreamResponse:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._conn is not None:  # not released (nor closed) yet
            self.close()

    # fed by the connection
    def _headers_done(self, status: int) -> None:
        self.status = status
        if not self._headers_fut.done():
            self._headers_fut.set_result(status)
        self._wake()

    def _forward(self) -> None:
        """Hand what is buffered to the sink (in the connection's data callback, or in ``forward``)."""
        buf = self._buf
        data = buf[0] if len(buf) == 1 else b"".join(buf)
        buf.clear()
        self._buffered = 0
        self._reads += 1
        self._last_data = self._now()
        sink = self._sink
        assert sink is not None
        try:
            full = sink(data)
        except Exception as exc:  # raised again by ``forward``, in the task that awaits it
            self._sink = None
            self._sink_error = exc
            full = True
        if full:  # no more for now: hold the socket until ``forward`` has drained the client
            self._sink = None
            conn = self._conn
            if conn is not None:
                conn.pause()
            self._wake()

    def _complete(self, keep_alive: bool) -> None:
        self._done = True
        self._keep_alive = keep_alive
        if self._waiter is not None:
            self._wake()

    def _lost(self) -> None:
        if self._done:
            return
        if not self._headers_fut.done():
            conn = self._conn
            err: UpstreamError = (StaleConnection("kept-alive connection closed by the upstream")
                                  if conn is not None and conn.reused and not self.got_bytes
                                  else UpstreamBroken("the upstream closed the connection before answering"))
            self._fail(err)
        else:
            self._fail(UpstreamBroken("the upstream closed the connection mid-response"))

    def _fail(self, err: UpstreamError) -> None:
        if self._error is None:
            self._error = err
        if not self._headers_fut.done():
            self._headers_fut.set_exception(err)
            self._headers_fut.exception()  # retrieved by whoever awaits; never "unretrieved"
        self._wake()

    def _wake(self) -> None:
        w, self._waiter = self._waiter, None
        if w is not None and not w.done():
            w.set_result(None)

    # used by the proxy
    async def headers(self, timeout_s: float) -> int:
        """The response status, once it arrived; UpstreamTimeout after ``timeout_s``.

        After a timeout the response stays usable: calling again waits on (the proxy
        probes the replica between waits). One future and one timer per call.
        """
        fut = self._headers_fut
        if not fut.done():
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            handle = loop.call_later(timeout_s, self._wake)
            try:
                await self._waiter
            finally:
                handle.cancel()
            if not fut.done():
                raise UpstreamTimeout(f"no response within {timeout_s:.0f} s")
        return fut.result()

    async def read(self) -> bytes:
        """The whole body; UpstreamTooLarge (and the connection dropped) past ``max_body_bytes``."""
        while not self._done:
            if self._error is not None:
                raise self._error
            if self._buffered > self._max_body:
                self.close()
                raise UpstreamTooLarge(f"the response body is larger than {self._max_body} bytes")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        if self._buffered > self._max_body:
            raise UpstreamTooLarge(f"the response body is larger than {self._max_body} bytes")
        data = b"".join(self._buf)
        self._buf.clear()
        return data

    async def forward(self, sink: Sink, *, drain: Callable[[], Awaitable[None]], stall_s: float,
                      idle_timeout_s: float, alive: Callable[[], Awaitable[bool]] | None = None) -> None:
        """Hand the body to ``sink`` as it arrives; return when it ended.

        ``sink`` is called from the connection's data callback, once per socket read (the
        pieces it held joined), so a chunk reaches the client with no task switch; what came
        before this call is handed on first, from here. When ``sink`` returns True (its client
        is full) the socket is paused until ``await drain()`` returns. What ``sink`` raises is
        raised here, and it is given nothing more.

        Raises UpstreamBroken on a cut, and UpstreamStalled when nothing arrived for
        ``idle_timeout_s``, or when, with nothing arriving, ``alive()`` (asked every
        ``stall_s``) says twice in a row that the replica is frozen: one slow probe on a
        starved machine must not cut a healthy stream (a queued request's stream is silent
        until a slot frees). One timer per stream, re-armed lazily: a read only stamps its time.
        """
        loop = asyncio.get_running_loop()
        check = min(stall_s, idle_timeout_s)
        stalled = False
        failed_probes = 0
        probed_at = -1  # ``_reads`` when a probe last failed
        self._last_data = loop.time()
        seen = self._reads
        handle: asyncio.TimerHandle

        def tick() -> None:
            nonlocal stalled, handle, seen
            if self._reads != seen or self._sink is None:  # data came (or the client is full): not stalled;
                seen = self._reads  # look again one period from now
                handle = loop.call_later(check, tick)
                return
            stalled = True
            self._wake()

        handle = loop.call_later(check, tick)
        self._streaming = True  # a full client now pauses the socket instead of growing the buffer
        self._sink = sink
        try:
            while True:
                if self._sink_error is not None:
                    err, self._sink_error = self._sink_error, None  # no cycle through its traceback
                    raise err
                if self._sink is None:  # the client is full: wait until it read, then go on
                    await drain()
                    self._sink = sink
                    conn = self._conn
                    if conn is not None:
                        conn.resume()
                if self._buf:  # what came before forwarding began, or while the client was full
                    self._forward()
                    continue
                if self._done:
                    return
                if self._error is not None:
                    raise self._error
                if stalled:
                    stalled = False
                    idle = loop.time() - self._last_data
                    if idle >= idle_timeout_s:
                        raise UpstreamStalled(f"no data for {idle:.0f} s (stream idle timeout)")
                    if self._reads != probed_at:
                        failed_probes = 0
                    if alive is not None and not await alive():
                        failed_probes += 1
                        probed_at = self._reads
                        if failed_probes >= 2:
                            raise UpstreamStalled(f"no data for {idle:.0f} s and the replica does not answer "
                                                  "its health probe")
                    else:
                        failed_probes = 0
                    handle = loop.call_later(min(check, max(idle_timeout_s - idle, 0.01)), tick)
                    continue
                self._waiter = loop.create_future()
                await self._waiter
        finally:
            self._sink = None
            handle.cancel()

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        conn._resp = None
        if self._done and self._keep_alive and not conn.closed:
            conn.pool.put(conn)
        else:
            conn.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn._resp = None
            conn.close()


class _HostPool:
    def __init__(self, base_url: str, connect_timeout_s: float, keepalive_s: float,
                 connect: Connector | None = None, access: UpstreamAccess = PLAIN) -> None:
        u = urlsplit(base_url)
        if u.scheme not in ("http", "https"):  # the config refuses these; never a bare ValueError here
            raise ConnectFailed(f"cannot talk to {base_url}: only http:// and https:// upstreams are supported")
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = None
        if u.scheme == "https":
            self.ssl = access.ssl_context or tls_context()
        self.prefix = u.path.rstrip("/").encode()
        # the Host header's value and, on the next line, the credential header (none without a
        # key): one bytes object per upstream, so a request head costs the same with or without it
        credential = b""
        if access.header is not None:
            name, value = access.header
            credential = f"\r\n{name}: {value}".encode("latin-1")
        self.host_header = f"{self.host}:{self.port}".encode() + credential
        self.connect_timeout_s = connect_timeout_s
        self.keepalive_s = keepalive_s
        self.connect = connect
        self.idle: list[_Conn] = []

    def put(self, conn: _Conn) -> None:
        conn.reused = True
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    def take_idle(self) -> _Conn | None:
        """A pooled connection still fit to reuse, or None; stale ones are closed on the way.
        Not a coroutine: the common case of ``UpstreamPool.post`` takes one without awaiting."""
        idle = self.idle
        if idle:
            now = time.monotonic()
            while idle:
                conn = idle.pop()
                if not conn.closed and now - conn.idle_since < self.keepalive_s:
                    return conn
                conn.close()
        return None

    async def get(self, fresh: bool) -> _Conn:
        if not fresh and (reused := self.take_idle()) is not None:
            return reused
        conn: _Conn
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                if self.connect is not None:
                    _, proto = await self.connect(lambda: _Conn(self), self.host, self.port)
                    conn = proto  # type: ignore[assignment]
                elif self.ssl is None:
                    _, conn = await loop.create_connection(lambda: _Conn(self), self.host, self.port)
                else:
                    _, conn = await loop.create_connection(lambda: _Conn(self), self.host, self.port, ssl=self.ssl,
                                                           server_hostname=self.host)
        except TimeoutError as exc:
            raise ConnectFailed(f"connecting to {self.host}:{self.port} timed out") from exc
        except (ssl.SSLError, ssl.CertificateError) as exc:
            why = describe_tls_error(exc) or str(exc)
            raise TlsFailed(f"TLS with {self.host}:{self.port}: {why}") from exc
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from exc
        return conn

    def close(self) -> None:
        for c in self.idle:
            c.close()
        self.idle.clear()


_POST = (b"POST %s%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: */*\r\n"
         b"%sContent-Length: %d\r\n\r\n%s")
"""A JSON request's head and body: the prefix, path, host header, extra header lines, length, body."""


class UpstreamPool:
    """Keep-alive connections per upstream base URL. Event-loop bound; not thread-safe."""

    def __init__(self, *, connect_timeout_s: float, keepalive_s: float = 4.0,
                 max_body_bytes: int = 64 * 1024 * 1024, connect: Connector | None = None,
                 access: Callable[[str], UpstreamAccess] | None = None) -> None:
        """``access``: the TLS and credentials of a base URL (asked once per URL; default: none, and
        the system's CAs for https://)."""
        # keep-alive shorter than cpp-httplib's 5 s server-side idle timeout, so the pool
        # rarely hands out a connection the server is about to close.
        self._hosts: dict[str, _HostPool] = {}
        self._connect_timeout_s = connect_timeout_s
        self._keepalive_s = keepalive_s
        self.max_body_bytes = max_body_bytes
        self._connect = connect
        self.access: Callable[[str], UpstreamAccess] = access or (lambda _url: PLAIN)

    def _host(self, base_url: str) -> _HostPool:
        h = self._hosts.get(base_url)
        if h is None:
            h = self._hosts[base_url] = _HostPool(base_url, self._connect_timeout_s, self._keepalive_s,
                                                       self._connect, self.access(base_url))
        return h

    def set_access(self, access: Callable[[str], UpstreamAccess], changed: set[str] | None = None) -> None:
        """Use ``access`` from now on; the URLs in ``changed`` (all, when None) drop their idle
        connections and pick up their new TLS and key on the next request."""
        self.access = access
        for url in list(self._hosts) if changed is None else changed:
            h = self._hosts.pop(url, None)
            if h is not None:
                h.close()

    async def post(self, base_url: str, path: str, body: bytes, *, fresh: bool = False,
                   extra_headers: bytes = b"") -> UpstreamResponse:
        """Send ``POST path`` with a JSON body; returns once the request is written.

        ``extra_headers``: complete header lines (``b"Name: value\\r\\n"`` each) sent as
        they are (e.g. ``traceparent``). Await ``resp.headers()`` for the status. Raises
        ConnectFailed.
        """
        if not fresh and (resp := self.post_idle(base_url, path, body, extra_headers)) is not None:
            return resp
        h = self._hosts.get(base_url) or self._host(base_url)
        conn = await h.get(True)  # nothing idle was fit to reuse: a new connection
        return conn.send(_POST % (h.prefix, path.encode("latin-1"), h.host_header, extra_headers, len(body), body),
                         self.max_body_bytes)

    def post_idle(self, base_url: str, path: str, body: bytes, extra_headers: bytes = b"") -> UpstreamResponse | None:
        """``post`` on a pooled connection, written before this returns; None when none is fit to
        reuse (then ``post`` connects). Not a coroutine: a caller can do its bookkeeping after the
        write, and knows nothing else ran in between."""
        h = self._hosts.get(base_url) or self._host(base_url)
        conn = h.take_idle()
        if conn is None:
            return None
        return conn.send(_POST % (h.prefix, path.encode("latin-1"), h.host_header, extra_headers, len(body), body),
                         self.max_body_bytes)

    async def probe(self, base_url: str, method: str, path: str, body: bytes | None, timeout_s: float) -> bool:
        """True when ``method path`` answers 2xx within ``timeout_s``, on a fresh connection
        (never one a stuck request holds); never raises for I/O trouble."""
        try:
            h = self._host(base_url)
            async with asyncio.timeout(timeout_s):
                conn = await h.get(fresh=True)
                payload = body or b""
                resp = conn.send(b"%s %s%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                                 % (method.encode(), h.prefix, path.encode("latin-1"), h.host_header, len(payload),
                                    payload), 1 << 20)
                try:
                    status = await resp.headers(timeout_s)
                finally:
                    resp.close()
                return 200 <= status < 300
        except (UpstreamError, TimeoutError):
            return False

    def close(self) -> None:
        for h in self._hosts.values():
            h.close()
        self._hosts.clear()
