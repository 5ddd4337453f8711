"""An in-process upstream for the pool's transport seam: the proxy without sockets.

Like httpx's ``MockTransport``: ``UpstreamPool(connect=MemoryConnector(app))`` sends every
upstream request to ``app(request, wire)``, an async function that answers through
``wire`` - whole (``respond``), as a chunked stream (``start``, ``chunk``..., ``end``), as raw
bytes (``raw``), or not at all (``drop``: the connection closes, a replica killed mid-request; an app that
raises drops it too, and ``errors`` keeps the exception).
The bytes go through the pool's real HTTP parser, so status, headers, chunked framing,
keep-alive and connection loss behave as on a socket. When the gateway closes the
connection, the app's task is cancelled (that is how a runtime sees a cancelled generation);
``wire.cancelled`` records it.

Connecting to a ``(host, port)`` listed in ``refuse`` fails as a refused TCP connection does.
For tests and benchmarks; nothing in ``serve`` uses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import httptools

__all__ = ["MemoryConnector", "MemoryRequest", "MemoryWire"]


@dataclass(slots=True)
class MemoryRequest:
    """One request as the in-process upstream received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(eq=False)
class MemoryWire:
    """The app's side of one connection."""

    _transport: _MemoryTransport
    cancelled: bool = False
    """The gateway closed the connection while the app was still answering."""
    sent: list[bytes] = field(default_factory=list)

    def raw(self, data: bytes) -> None:
        """Send bytes to the gateway as they are."""
        self._transport.deliver(data)

    def respond(self, status: int, body: bytes, content_type: str = "application/json",
                headers: Iterable[tuple[str, str]] = ()) -> None:
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
        self.raw(f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}"
                 f"\r\n".encode() + body)

    def start(self, status: int = 200, content_type: str = "text/event-stream",
              headers: Iterable[tuple[str, str]] = ()) -> None:
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
        self.raw(f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n{extra}"
                 "\r\n".encode())

    def chunk(self, data: bytes) -> None:
        self.raw(b"%x\r\n%s\r\n" % (len(data), data))

    def end(self) -> None:
        self.raw(b"0\r\n\r\n")

    def drop(self) -> None:
        """Close the connection from the upstream's side."""
        self._transport.lose()


App = Callable[[MemoryRequest, MemoryWire], Awaitable[None]]


class _MemoryTransport(asyncio.Transport):
    def __init__(self, connector: MemoryConnector, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self._connector = connector
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._wire = MemoryWire(self)
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []

    # parser callbacks (the request the gateway wrote)
    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        req = MemoryRequest(self._parser.get_method().decode(), self._url.decode("latin-1"), self._headers,
                            b"".join(self._body))
        self._url, self._headers, self._body = b"", {}, []
        self._connector.requests.append(req)
        self._task = self._loop.create_task(self._answer(req))

    async def _answer(self, req: MemoryRequest) -> None:
        try:
            await self._connector.app(req, self._wire)
        except Exception as exc:  # a broken app is a crashed server: its connection drops
            self._connector.errors.append(exc)
            self.lose()

    # asyncio.Transport
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._closed:
            self._parser.feed_data(bytes(data))

    def deliver(self, data: bytes) -> None:
        if not self._closed:
            self._wire.sent.append(data)
            self._loop.call_soon(self._feed, data)

    def _feed(self, data: bytes) -> None:
        if not self._closed:
            self._protocol.data_received(data)

    def lose(self) -> None:
        if not self._closed:
            self._closed = True
            self._loop.call_soon(self._protocol.connection_lost, None)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        task = self._task
        if task is not None and not task.done():
            self._wire.cancelled = True
            task.cancel()
        self._connector.closed += 1
        self._loop.call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self._closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return False


class MemoryConnector:
    """The pool's ``connect``: each connection made answers with ``app``. Counts what happened."""

    def __init__(self, app: App, *, refuse: Iterable[tuple[str, int]] = ()) -> None:
        self.app = app
        self.refuse = set(refuse)
        self.requests: list[MemoryRequest] = []
        """Every request received, in order."""
        self.errors: list[Exception] = []
        """What the app raised (each one dropped its connection, as a crashed server's would)."""
        self.connections = 0
        self.closed = 0
        """Connections the gateway closed (not released to its pool)."""

    async def __call__(self, factory: Callable[[], asyncio.Protocol], host: str,
                       port: int) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
        if (host, port) in self.refuse:
            raise ConnectionRefusedError(111, "Connection refused")
        protocol = factory()
        transport = _MemoryTransport(self, protocol)
        self.connections += 1
        protocol.connection_made(transport)
        return transport, protocol
