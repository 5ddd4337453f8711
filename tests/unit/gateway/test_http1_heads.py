"""Request heads, however the reads cut them: a head in pieces, several requests in one read,
the next request beginning mid-read, empty lines between requests - each request gets exactly
its own header fields (values trimmed, repeated names joined, bytes read as Latin-1)."""

from __future__ import annotations

import asyncio

import pytest

from inferplane.gateway import http1
from inferplane.gateway.http_limits import HttpLimits, ServerState


async def _echo(req: http1.Request, out: http1.Responder) -> None:
    """Answers the request line and its header fields, one ``name=value`` per line."""
    fields = "".join(f"\n{k}={v}" for k, v in sorted(req.headers.items()))
    out.send(200, f"{req.method} {req.path} {req.body.decode()}{fields}".encode(), [("Content-Type", "text/plain")])


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def can_write_eof(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _serve_reads(reads: list[bytes]) -> bytes:
    """Feed ``reads`` to one connection as its socket reads, letting the handler run after each."""

    async def go() -> bytes:
        proto = http1.HttpServerProtocol(_echo, ServerState(HttpLimits(max_body_bytes=1000)))
        t = _Transport()
        proto.connection_made(t)
        for data in reads:
            proto.data_received(data)
            for _ in range(5):
                await asyncio.sleep(0)
        for _ in range(20):
            await asyncio.sleep(0)
        proto.connection_lost(None)
        return bytes(t.out)

    return asyncio.run(go())


def _bodies(out: bytes) -> list[bytes]:
    """The response bodies in ``out``, in order (each response has a Content-Length)."""
    bodies = []
    while out:
        head, _, rest = out.partition(b"\r\n\r\n")
        n = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        bodies.append(rest[:n])
        out = rest[n:]
    return bodies


_PIPELINED = (b"POST /a HTTP/1.1\r\nHost: h\r\nX-Id: one\r\nContent-Length: 5\r\n\r\nhello"
              b"\r\n"  # an empty line between requests, which servers ignore (RFC 9112 2.2)
              b"GET /b HTTP/1.1\r\nHost: h\r\nX-Id: two\r\nAccept:  \t text/plain \t\r\nX-Dup: 1\r\nX-Dup: 2\r\n\r\n"
              b"POST /c HTTP/1.1\r\nHost: h\r\nX-Id: three\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
_EXPECTED = [b"POST /a hello\nhost=h\nx-id=one\ncontent-length=5",
             b"GET /b \naccept=text/plain\nhost=h\nx-dup=1, 2\nx-id=two",
             b"POST /c abc\nhost=h\ntransfer-encoding=chunked\nx-id=three"]


def _sorted_fields(body: bytes) -> bytes:
    line, *fields = body.split(b"\n")
    return b"\n".join([line, *sorted(fields)])


def test_three_pipelined_requests_in_one_read_each_get_their_own_headers() -> None:
    got = _bodies(_serve_reads([_PIPELINED]))
    assert [_sorted_fields(b) for b in got] == [_sorted_fields(e) for e in _EXPECTED]


@pytest.mark.parametrize("cut", range(1, len(_PIPELINED)))
def test_the_same_requests_cut_into_two_reads_anywhere(cut: int) -> None:
    got = _bodies(_serve_reads([_PIPELINED[:cut], _PIPELINED[cut:]]))
    assert [_sorted_fields(b) for b in got] == [_sorted_fields(e) for e in _EXPECTED]


def test_a_head_sent_a_byte_at_a_time() -> None:
    raw = b"GET /slow HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer k\r\nX-Long: " + b"v" * 300 + b"\r\n\r\n"
    (body,) = _bodies(_serve_reads([raw[i : i + 1] for i in range(len(raw))]))
    assert body == b"GET /slow \nauthorization=Bearer k\nhost=h\nx-long=" + b"v" * 300


def test_non_ascii_header_bytes_are_read_as_latin_1() -> None:
    (body,) = _bodies(_serve_reads([b"GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\xe9\r\n\r\n"]))
    assert body == "GET / \nhost=h\nx-name=café".encode()


def test_after_a_chunked_body_the_next_read_starts_a_request_as_usual() -> None:
    got = _bodies(_serve_reads([b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                                b"GET /next HTTP/1.1\r\nHost: h\r\nX-Id: 2\r\n\r\n"]))
    assert got == [b"POST /c abc\nhost=h\ntransfer-encoding=chunked", b"GET /next \nhost=h\nx-id=2"]
