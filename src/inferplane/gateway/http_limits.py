"""What the HTTP server accepts from a client, and the little shared state of one listening server.

The defaults follow nginx and Apache, the servers most clients have already met:

| limit | default | reference |
|---|---|---|
| request target (URL) | 8 KiB -> 414 | nginx ``large_client_header_buffers 4 8k``; Apache ``LimitRequestLine 8190`` |
| one header line | 8 KiB -> 431 | nginx 8k buffer; Apache ``LimitRequestFieldSize 8190`` |
| whole request head | 32 KiB -> 431 | nginx ``4 x 8k`` |
| header fields | 100 -> 431 | Apache ``LimitRequestFields 100`` |
| complete head within | 20 s -> 408 | Apache ``mod_reqtimeout header=20``; nginx ``client_header_timeout 60s`` |
| open connections | 4096 -> 503 | uvicorn ``--limit-concurrency`` answers 503 the same way |
| queued pipelined requests | 32 -> 429 | uvicorn stops reading while one waits; this bounds one read's worth |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate

__all__ = ["HttpLimits", "Refused", "ServerState", "peek_head"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpLimits:
    """Per-server limits on what one client may send (see the module table for the defaults' origin)."""

    max_body_bytes: int = 8 * 1024 * 1024
    """Largest request body; a larger one is answered 413 as soon as it is known, and the connection closed."""
    max_url_bytes: int = 8 * 1024
    """Longest request target; longer is 414."""
    max_header_line_bytes: int = 8 * 1024
    """Longest single header field (name + value); longer is 431."""
    max_head_bytes: int = 32 * 1024
    """Largest request head (request line + all header lines); larger is 431."""
    max_header_count: int = 100
    """Most header fields in one request; more is 431."""
    head_timeout_s: float = 20.0
    """A request head must be complete this long after its first byte (or after the connection
    opened, for the first request), however slowly it trickles in; else 408 and close."""
    idle_timeout_s: float = 75.0
    """A kept-alive connection with no request, or a request body with no bytes, for this long is closed."""
    max_connections: int = 4096
    """Open client connections; one more is answered 503 with ``Retry-After`` and closed."""
    max_pipelined_requests: int = 32
    """Requests queued behind the one being served on a connection; one more is 429 and close."""

    @property
    def max_body_wire_bytes(self) -> int:
        """Bytes a request body may take on the wire, chunk framing and trailers included."""
        return 2 * self.max_body_bytes + self.max_head_bytes


Refused = Callable[[str, dict[str, str], int, str], None]
"""``(path, headers, status, code)`` of a request the server refused before any handler saw it
(413, 431, 414, 408, a malformed head..., 429 for one pipelined request too many, 503 at the
connection cap): ``path`` and ``headers`` as far as they were read ("" and {} when the request
line was not). Must not raise."""


class ServerState:
    """What the connections of one listening server share: the connection count and the Date header.

    Not thread-safe; lives on the event loop like the connections.
    """

    __slots__ = ("connections", "date", "date_expires", "limits", "on_refused")

    def __init__(self, limits: HttpLimits, on_refused: Refused | None = None) -> None:
        self.limits = limits
        self.on_refused = on_refused
        """Told of every request the server answers itself (see :data:`Refused`)."""
        self.connections = 0
        self.date = b""
        """``Date: <IMF-fixdate>\\r\\n`` (RFC 9110 6.6.1), valid until ``date_expires``."""
        self.date_expires = 0.0
        """Unix time at which ``date`` must be refreshed (the next whole second)."""

    def refresh_date(self, now: float) -> None:
        """Format ``date`` for ``now`` (Unix time); callers check ``date_expires`` first, so this
        runs at most about once a second."""
        second = int(now)
        self.date = b"Date: %s\r\n" % formatdate(second, usegmt=True).encode("ascii")
        self.date_expires = second + 1.0


def peek_head(data: bytes, limits: HttpLimits) -> tuple[str, dict[str, str]] | None:
    """(path, headers) from the start of a request head, for reporting a request refused before
    it was parsed (the connection cap): the request line and the header lines in ``data``,
    names lower-cased, bounded by ``limits``; None when ``data`` does not start with a request line."""
    lines = data[: limits.max_head_bytes].split(b"\r\n\r\n", 1)[0].split(b"\r\n", limits.max_header_count + 1)
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return None
    url = parts[1]
    if url.startswith((b"http://", b"https://")):  # absolute-form
        slash = url.find(b"/", url.index(b"//") + 2)
        url = b"/" if slash < 0 else url[slash:]
    headers: dict[str, str] = {}
    for line in lines[1 : limits.max_header_count + 1]:
        name, colon, value = line.partition(b":")
        if colon and len(line) <= limits.max_header_line_bytes:
            headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    return url.split(b"?", 1)[0].decode("latin-1"), headers
