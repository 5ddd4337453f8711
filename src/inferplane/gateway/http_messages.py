"""The two objects a handler of the HTTP server sees: the parsed :class:`Request` and the
:class:`Responder` that writes its answer (see :mod:`inferplane.gateway.http1` for the contract)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus
from time import time as _time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inferplane.gateway.http1 import HttpServerProtocol

__all__ = ["REASONS", "Handler", "Request", "Responder"]

REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_STATUS_LINES = {code: b"HTTP/1.1 %d %s\r\n" % (code, reason) for code, reason in REASONS.items()}


class Request:
    """One parsed request. ``headers`` has lower-cased names (repeats joined with ", ");
    ``body`` is the whole body; ``http_version`` is "1.1" or "1.0"."""

    __slots__ = ("body", "headers", "http_version", "keep_alive", "method", "path", "query")

    def __init__(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes,
                 keep_alive: bool, http_version: str = "1.1") -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.http_version = http_version


Handler = Callable[[Request, "Responder"], Awaitable[None]]


class Responder:
    """Writes the answer to one request.

    For ``HEAD`` it writes the head a ``GET`` would get and no body. For an HTTP/1.0 client a
    stream is close-delimited (no ``Transfer-Encoding``, which HTTP/1.0 does not know; RFC 9112 6.1).
    """

    __slots__ = ("_chunked", "_head_only", "_http10", "_proto", "keep_alive", "started", "status")

    def __init__(self, proto: HttpServerProtocol, keep_alive: bool, http10: bool = False,
                 head_only: bool = False) -> None:
        self._proto = proto
        self.keep_alive = keep_alive
        self.started = False
        self.status = 0
        self._chunked = False
        self._http10 = http10
        self._head_only = head_only

    def _head(self, status: int, headers: list[tuple[str, str]], extra: bytes) -> bytes:
        state = self._proto.state
        now = _time()
        if now >= state.date_expires:
            state.refresh_date(now)
        line = _STATUS_LINES.get(status)
        if line is None:
            line = b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b"Unknown"))
        # one str join and one encode for all the headers (a latin-1 encode per name and value
        # and a bytes format per line cost twice as much; same error for a non-latin-1 value)
        fields = "".join([f"{k}: {v}\r\n" for k, v in headers]).encode("latin-1")
        if not self.keep_alive:
            return b"".join((line, state.date, fields, b"Connection: close\r\n", extra))
        if self._http10:
            return b"".join((line, state.date, fields, b"Connection: keep-alive\r\n", extra))
        return b"".join((line, state.date, fields, extra))

    def send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        """The whole response in one write. ``headers`` must include Content-Type."""
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self.status = status
        head = self._head(status, headers, b"Content-Length: %d\r\n\r\n" % len(body))
        self._proto.write(head if self._head_only else head + body)

    def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        """Begin a streamed response (for SSE): chunked, or close-delimited for HTTP/1.0."""
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self.status = status
        if self._http10:
            self.keep_alive = False
            self._proto.write(self._head(status, headers, b"\r\n"))
        else:
            self._chunked = not self._head_only
            self._proto.write(self._head(status, headers, b"Transfer-Encoding: chunked\r\n\r\n"))

    async def write(self, data: bytes) -> None:
        """One chunk of a started response; waits while the client reads slower than we write."""
        if data and not self._head_only:
            self._proto.write(b"%x\r\n%s\r\n" % (len(data), data) if self._chunked else data)
            await self._proto.drain()

    def write_now(self, data: bytes) -> bool:
        """One chunk of a started response, without waiting (for a caller that is not a task:
        a data callback); True when the client reads slower than we write: ``await drain()``
        before writing more."""
        if data and not self._head_only:
            return self._proto.write(b"%x\r\n%s\r\n" % (len(data), data) if self._chunked else data)
        return False

    async def drain(self) -> None:
        """Wait while the client reads slower than we write (ConnectionResetError once it is gone)."""
        await self._proto.drain()

    def end(self, data: bytes = b"") -> None:
        """End a started response after ``data``, its last bytes (in the same write)."""
        if self._chunked:
            self._chunked = False
            self._proto.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data) if data else b"0\r\n\r\n")
        elif data and not self._head_only:
            self._proto.write(data)
