"""Raw-socket clients for the hostile-input suite: send exactly the bytes a test names, bounded in
bytes and seconds, and say what came back."""

from __future__ import annotations

import re
import select
import socket
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Answer", "exchange", "rss_mb", "send_until_answered"]

ANSWER_WITHIN_S = 15.0
"""No hostile request may go unanswered (or the connection unclosed) longer than this."""


@dataclass(frozen=True, slots=True)
class Answer:
    data: bytes
    closed: bool  # the server closed the connection (rather than the client giving up)
    seconds: float

    @property
    def status(self) -> int:
        parts = self.data.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0

    @property
    def statuses(self) -> list[int]:
        return [int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3}) ", self.data)]

    @property
    def head(self) -> bytes:
        return self.data.partition(b"\r\n\r\n")[0]

    @property
    def body(self) -> bytes:
        return self.data.partition(b"\r\n\r\n")[2]


def _read_until_closed(sock: socket.socket, t0: float, limit_s: float) -> Answer:
    chunks = []
    while True:
        left = t0 + limit_s - time.monotonic()
        if left <= 0:
            return Answer(b"".join(chunks), False, time.monotonic() - t0)
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            continue
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return Answer(b"".join(chunks), True, time.monotonic() - t0)
        chunks.append(chunk)


def exchange(port: int, payload: bytes, *, limit_s: float = ANSWER_WITHIN_S) -> Answer:
    """Send ``payload`` and read until the server closes (the payload should ask it to)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=limit_s) as sock:
        try:
            sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return _read_until_closed(sock, t0, limit_s)


def send_until_answered(port: int, head: bytes, filler: bytes, total: int, *,
                        limit_s: float = ANSWER_WITHIN_S) -> tuple[Answer, int]:
    """Send ``head`` then ``filler`` over and over up to ``total`` bytes, stopping as soon as the
    server answers; returns the answer and the bytes sent."""
    t0 = time.monotonic()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=limit_s) as sock:
        try:
            sock.sendall(head)
            sent = len(head)
            while sent < total and time.monotonic() - t0 < limit_s:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                start = (sent - len(head)) % len(filler)
                piece = filler[start : start + min(65536, total - sent)] or filler[: min(65536, total - sent)]
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return _read_until_closed(sock, t0, limit_s), sent


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
