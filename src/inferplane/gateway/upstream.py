"""A lean keep-alive HTTP/1.1 client for the proxy's upstream requests (asyncio + httptools).

One ``UpstreamPool`` per gateway holds, per upstream base URL, a stack of idle
connections. A request is written in one ``transport.write``; the response's headers
are awaited; its body is read whole (``read``) or chunk by chunk as it arrives
(``chunks``), chunked transfer-encoding already decoded by httptools.

Errors (all ``UpstreamError``):
- ``StaleConnection``: a reused keep-alive connection was closed by the server before
  any byte of the response came back - the request can be resent on a fresh connection.
- ``ConnectFailed``: no TCP connection could be made.
- ``UpstreamBroken``: the connection broke after the response had started.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools

__all__ = ["ConnectFailed", "StaleConnection", "UpstreamBroken", "UpstreamError", "UpstreamPool",
           "UpstreamResponse", "UpstreamTimeout"]


class UpstreamError(Exception):
    """Talking to an upstream failed."""


class StaleConnection(UpstreamError):
    """A kept-alive connection was already dead; nothing was answered."""


class ConnectFailed(UpstreamError):
    """The TCP connection could not be made."""


class UpstreamBroken(UpstreamError):
    """The connection broke mid-response."""


class UpstreamTimeout(UpstreamError):
    """No response status within the first-byte timeout."""


class _Conn(asyncio.Protocol):
    """One upstream connection; serves one request at a time."""

    def __init__(self, pool: _HostPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
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
        self._resp.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._resp._fail(UpstreamBroken(f"malformed response: {exc}"))
            self.close()

    # parser callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if self._resp is not None and name.lower() == b"content-type":
            self._resp.content_type = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if self._resp is not None:
            self._resp._headers_done(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        if self._resp is not None:
            self._resp._body(body)

    def on_message_complete(self) -> None:
        resp = self._resp
        if resp is not None:
            resp._complete(self.parser.should_keep_alive())

    def send(self, resp: UpstreamResponse, data: bytes) -> None:
        self._resp = resp
        self.parser = httptools.HttpResponseParser(self)
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamResponse:
    """The answer to one upstream request. Call ``release()`` (keep the connection) when read
    to the end, or ``close()`` (drop it) otherwise; both are idempotent."""

    __slots__ = ("_buf", "_conn", "_done", "_error", "_headers_fut", "_keep_alive", "_waiter",
                 "content_type", "got_bytes", "status")

    def __init__(self, conn: _Conn) -> None:
        self._conn: _Conn | None = conn
        self._headers_fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._buf: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._done = False
        self._keep_alive = False
        self._error: UpstreamError | None = None
        self.status = 0
        self.content_type = "application/json"
        self.got_bytes = False

    # fed by the connection
    def _headers_done(self, status: int) -> None:
        self.status = status
        if not self._headers_fut.done():
            self._headers_fut.set_result(status)

    def _body(self, data: bytes) -> None:
        self._buf.append(data)
        self._wake()

    def _complete(self, keep_alive: bool) -> None:
        self._done = True
        self._keep_alive = keep_alive
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
        """The response status, once it arrived; UpstreamTimeout after ``timeout_s``."""
        fut = self._headers_fut
        if fut.done():
            return fut.result()
        handle = asyncio.get_running_loop().call_later(timeout_s, self._timed_out, timeout_s)
        try:
            return await fut
        finally:
            handle.cancel()

    def _timed_out(self, timeout_s: float) -> None:
        if not self._headers_fut.done():
            self._fail(UpstreamTimeout(f"no response within {timeout_s:.0f} s"))

    async def read(self) -> bytes:
        """The whole body."""
        while not self._done:
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        data = b"".join(self._buf)
        self._buf.clear()
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive (adjacent pieces joined); raises UpstreamBroken on a cut."""
        loop = asyncio.get_running_loop()
        while True:
            if self._buf:
                data = self._buf[0] if len(self._buf) == 1 else b"".join(self._buf)
                self._buf.clear()
                yield data
                continue
            if self._done:
                return
            if self._error is not None:
                raise self._error
            self._waiter = loop.create_future()
            await self._waiter

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
    def __init__(self, base_url: str, connect_timeout_s: float, keepalive_s: float) -> None:
        u = urlsplit(base_url)
        if u.scheme != "http":
            raise ValueError(f"only http:// upstreams are supported by the fast path, got {base_url}")
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 80
        self.prefix = u.path.rstrip("/").encode()
        self.host_header = f"{self.host}:{self.port}".encode()
        self.connect_timeout_s = connect_timeout_s
        self.keepalive_s = keepalive_s
        self.idle: list[_Conn] = []

    def put(self, conn: _Conn) -> None:
        conn.reused = True
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    async def get(self, fresh: bool) -> _Conn:
        now = time.monotonic()
        while self.idle and not fresh:
            conn = self.idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive_s:
                return conn
            conn.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(lambda: _Conn(self), self.host, self.port)
        except TimeoutError as exc:
            raise ConnectFailed(f"connecting to {self.host}:{self.port} timed out") from exc
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from exc
        return conn

    def close(self) -> None:
        for c in self.idle:
            c.close()
        self.idle.clear()


class UpstreamPool:
    """Keep-alive connections per upstream base URL. Event-loop bound; not thread-safe."""

    def __init__(self, *, connect_timeout_s: float, keepalive_s: float = 4.0) -> None:
        # keep-alive shorter than cpp-httplib's 5 s server-side idle timeout, so the pool
        # rarely hands out a connection the server is about to close.
        self._hosts: dict[str, _HostPool] = {}
        self._connect_timeout_s = connect_timeout_s
        self._keepalive_s = keepalive_s

    def _host(self, base_url: str) -> _HostPool:
        h = self._hosts.get(base_url)
        if h is None:
            h = self._hosts[base_url] = _HostPool(base_url, self._connect_timeout_s, self._keepalive_s)
        return h

    async def post(self, base_url: str, path: str, body: bytes, *, fresh: bool = False) -> UpstreamResponse:
        """Send ``POST path`` with a JSON body; returns once the request is written.

        Await ``resp.headers()`` for the status. Raises ConnectFailed.
        """
        h = self._host(base_url)
        conn = await h.get(fresh)
        resp = UpstreamResponse(conn)
        conn.send(resp, b"POST %s%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                        b"Accept: */*\r\nContent-Length: %d\r\n\r\n%s"
                  % (h.prefix, path.encode("latin-1"), h.host_header, len(body), body))
        return resp

    def close(self) -> None:
        for h in self._hosts.values():
            h.close()
        self._hosts.clear()
