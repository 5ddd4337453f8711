"""The HTTP server against hostile clients: head limits, deadlines, caps, trailers, smuggling,
pipelining with garbage, HTTP/1.0, HEAD, 100-continue, and memory freed when a client vanishes."""

from __future__ import annotations

import asyncio
import gc
import socket
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import uvloop

from inferplane.gateway import http1
from inferplane.gateway.http_limits import HttpLimits, ServerState


async def _handler(req: http1.Request, out: http1.Responder) -> None:
    if req.path == "/stream":
        out.start(200, [("Content-Type", "text/event-stream")])
        for i in range(3):
            await out.write(b"data: %d\n\n" % i)
        out.end()
    elif req.path == "/slow":
        await asyncio.sleep(0.3)
        out.send(200, b"slow done", [("Content-Type", "text/plain")])
    elif req.path == "/headers":
        body = "\n".join(f"{k}={v}" for k, v in sorted(req.headers.items())).encode()
        out.send(200, body, [("Content-Type", "text/plain")])
    else:
        out.send(200, b"%s %s %d" % (req.method.encode(), req.path.encode(), len(req.body)),
                 [("Content-Type", "text/plain")])


@asynccontextmanager
async def _server(**limits: object) -> AsyncIterator[tuple[int, weakref.WeakSet[http1.HttpServerProtocol]]]:
    """A server with ``HttpLimits(**limits)``; yields its port and a weak set of its connections."""
    state = ServerState(HttpLimits(**{"max_body_bytes": 1000, **limits}))  # type: ignore[arg-type]
    protocols: weakref.WeakSet[http1.HttpServerProtocol] = weakref.WeakSet()

    def factory() -> http1.HttpServerProtocol:
        p = http1.HttpServerProtocol(_handler, state)
        protocols.add(p)
        return p

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], protocols
    finally:
        server.close()


async def _read_all(reader: asyncio.StreamReader, limit_s: float = 10) -> bytes:
    async def go() -> bytes:
        chunks = []
        while chunk := await reader.read(65536):
            chunks.append(chunk)
        return b"".join(chunks)

    return await asyncio.wait_for(go(), limit_s)


async def _exchange(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    try:
        return await _read_all(reader)
    finally:
        writer.close()


def run(coro_fn: Callable[[], object], **limits: object) -> object:
    async def main() -> object:
        async with _server(**limits) as (port, _protocols):
            return await coro_fn(port)  # type: ignore[operator]

    return asyncio.run(main())


def _status(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


# -- request head limits -------------------------------------------------------------------------


def test_long_url_is_414() -> None:
    data = run(lambda port: _exchange(port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n"))
    assert _status(data) == 414 and b"Connection: close" in data and b'"code":"uri_too_long"' in data


def test_long_header_line_is_431() -> None:
    data = run(lambda port: _exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"))
    assert _status(data) == 431 and b"x-big" in data


def test_too_many_headers_is_431() -> None:
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(150))
    data = run(lambda port: _exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n" + many + b"\r\n"))
    assert _status(data) == 431 and b"100 header fields" in data


def test_a_head_over_the_total_limit_is_431_even_in_one_piece() -> None:
    lines = b"".join(b"X-%d: %s\r\n" % (i, b"a" * 4000) for i in range(20))  # 20 x 4 KB: each line is fine
    data = run(lambda port: _exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n" + lines + b"\r\n"))
    assert _status(data) == 431 and b"head is larger than 32768" in data


def test_a_huge_header_streamed_in_pieces_is_cut_off_early() -> None:
    """A 10 MB header line sent in pieces: 431 long before the line ends, the rest never buffered."""

    async def go(port: int) -> tuple[bytes, int]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: ")
        sent = 0
        try:
            while sent < 10_000_000 and not reader.at_eof():
                writer.write(b"a" * 65536)
                await writer.drain()
                sent += 65536
                await asyncio.sleep(0)
                if len(reader._buffer):  # type: ignore[attr-defined]  # the answer came
                    break
        except ConnectionError:
            pass
        data = await _read_all(reader)
        writer.close()
        return data, sent

    data, sent = run(go)  # type: ignore[misc]
    assert _status(data) == 431
    assert sent < 5_000_000


def test_a_head_trickled_byte_by_byte_gets_408_at_the_deadline() -> None:
    """Slowloris: each byte arrives before the idle timeout, but the head deadline holds."""

    async def go(port: int) -> tuple[bytes, float]:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        t0 = loop.time()
        head = b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: " + b"a" * 1000
        for b in head:
            if reader.at_eof() or len(reader._buffer):  # type: ignore[attr-defined]
                break
            writer.write(bytes([b]))
            await asyncio.sleep(0.05)
        data = await _read_all(reader)
        writer.close()
        return data, loop.time() - t0

    data, waited = run(go, head_timeout_s=0.6, idle_timeout_s=5)  # type: ignore[misc]
    assert _status(data) == 408
    assert 0.4 < waited < 4


def test_connections_over_the_cap_get_503_and_the_rest_still_work() -> None:
    async def go(port: int) -> tuple[bytes, bytes]:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        await asyncio.sleep(0.05)
        refused = await _exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        reader, writer = held[0]
        writer.write(b"GET /ok HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        ok = await _read_all(reader)
        for _, w in held:
            w.close()
        return refused, ok

    refused, ok = run(go, max_connections=3)  # type: ignore[misc]
    assert _status(refused) == 503 and b"Retry-After: 1" in refused and b"too_many_connections" in refused
    assert ok.endswith(b"GET /ok 0")


# -- bodies ---------------------------------------------------------------------------------------


def test_expect_100_continue_over_the_limit_is_413_at_once_without_100() -> None:
    async def go(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n")
        data = await _read_all(reader, limit_s=5)  # no body sent: the answer must come without it
        writer.close()
        return data

    data = run(go)
    assert data.startswith(b"HTTP/1.1 413") and b"100 Continue" not in data


def test_a_huge_chunk_is_413_as_soon_as_the_limit_is_passed() -> None:
    async def go(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"
                     + b"x" * 2000)
        data = await _read_all(reader, limit_s=5)
        writer.close()
        return data

    assert _status(run(go)) == 413  # type: ignore[arg-type]


def test_trailers_never_become_request_headers() -> None:
    payload = (b"POST /headers HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nX-Request-Id: real\r\n"
               b"Connection: close\r\n\r\n3\r\nabc\r\n0\r\nAuthorization: Bearer sneaky\r\nX-Request-Id: trailer\r\n\r\n")
    data = run(lambda port: _exchange(port, payload))
    assert _status(data) == 200
    assert b"x-request-id=real" in data and b"trailer" not in data and b"authorization" not in data


def test_two_authorization_headers_are_400() -> None:
    data = run(lambda port: _exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer a\r\n"
                                            b"Authorization: Bearer b\r\n\r\n"))
    assert _status(data) == 400 and b"authorization" in data


@pytest.mark.parametrize("payload", [
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"POST / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n folded\r\nContent-Length: 3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\nHost: h\n\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
], ids=["cl-and-te", "two-cl", "obs-fold", "te-not-last-chunked", "bare-lf", "two-hosts"])
def test_smuggling_attempts_are_400_and_close(payload: bytes) -> None:
    data = run(lambda port: _exchange(port, payload))
    assert _status(data) == 400 and b"Connection: close" in data


def test_unknown_transfer_coding_is_501() -> None:
    data = run(lambda port: _exchange(port, b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n"
                                            b"\r\n0\r\n\r\n"))
    assert _status(data) == 501


# -- pipelining ---------------------------------------------------------------------------------


def test_a_valid_request_before_garbage_still_gets_its_response_first() -> None:
    data = run(lambda port: _exchange(port, b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\nTHIS IS NOT HTTP\r\n\r\n"))
    assert data.startswith(b"HTTP/1.1 200") and b"slow done" in data
    assert data.index(b"slow done") < data.index(b"HTTP/1.1 400")


def test_too_many_pipelined_requests_get_429_after_the_queued_ones() -> None:
    payload = b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n" + b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n" * 10
    data = run(lambda port: _exchange(port, payload), max_pipelined_requests=4)
    assert data.count(b"HTTP/1.1 200") == 5 and data.count(b"HTTP/1.1 429") == 1
    assert data.index(b"HTTP/1.1 429") > data.rindex(b"HTTP/1.1 200")


def test_reading_pauses_while_pipelined_requests_wait() -> None:
    async def go() -> tuple[bool, bytes]:
        async with _server() as (port, protocols):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            await asyncio.sleep(0.1)
            (proto,) = list(protocols)
            paused = proto._read_paused
            data = await _read_all(reader)
            writer.close()
            return paused, data

    paused, data = asyncio.run(go())
    assert paused and data.count(b"HTTP/1.1 200") == 2


# -- what responses look like -------------------------------------------------------------------------


def test_http10_clients_never_get_chunked_streams() -> None:
    data = run(lambda port: _exchange(port, b"GET /stream HTTP/1.0\r\nHost: h\r\n\r\n"))
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head and b"Connection: close" in head
    assert body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"


def test_http10_keep_alive_is_honoured_and_said() -> None:
    data = run(lambda port: _exchange(port, b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                                            b"GET /b HTTP/1.0\r\n\r\n"))
    assert data.count(b"HTTP/1.1 200") == 2 and b"Connection: keep-alive" in data


def test_head_gets_the_headers_of_get_without_a_body() -> None:
    data = run(lambda port: _exchange(port, b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\nGET /y HTTP/1.1\r\nHost: h\r\n"
                                            b"Connection: close\r\n\r\n"))
    first, _, rest = data.partition(b"\r\n\r\n")
    assert b"Content-Length: 9" in first  # the length of the body it would have had: "HEAD /x 0"
    assert rest.startswith(b"HTTP/1.1 200") and rest.endswith(b"GET /y 0")


def test_responses_carry_a_date_header() -> None:
    data = run(lambda port: _exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
    assert b"\r\nDate: " in data and b" GMT\r\n" in data


def test_absolute_form_targets_are_served_by_path() -> None:
    data = run(lambda port: _exchange(port, b"GET http://h/x?q=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
    assert data.endswith(b"GET /x 0")


# -- memory -------------------------------------------------------------------------------------------


def _abort(sock: socket.socket) -> None:
    """Close with a TCP reset, as a client that crashed mid-upload does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"])
def test_no_connection_outlives_its_client_even_without_the_cycle_collector(loop_factory) -> None:
    """Clients that vanish mid-head, mid-body, mid-stream and mid-response leave nothing behind.

    ``serve`` freezes the GC and raises its thresholds so the cycle collector practically never
    runs; this test turns it off altogether, so any reference cycle through a connection fails it.
    """

    async def go() -> tuple[int, int]:
        async with _server(max_body_bytes=4_000_000) as (port, protocols):
            loop = asyncio.get_running_loop()
            partials = [
                b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3000000\r\n\r\n" + b"x" * 1_000_000,
                b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 5000,
                b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n",
                b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                b"GARBAGE\r\n\r\n",
            ] * 5
            for payload in partials:
                sock = socket.create_connection(("127.0.0.1", port))
                sock.setblocking(False)
                await loop.sock_sendall(sock, payload)
                await asyncio.sleep(0.02)
                _abort(sock)
            deadline = loop.time() + 5
            while len(protocols) and loop.time() < deadline:  # noqa: ASYNC110 - polling a WeakSet
                await asyncio.sleep(0.05)
            left = len(protocols)
            opened = len(partials)
        return left, opened

    gc.collect()
    gc.disable()
    try:
        loop = loop_factory()
        try:
            left, opened = loop.run_until_complete(go())
        finally:
            loop.close()
    finally:
        gc.enable()
    assert opened == 30
    assert left == 0, f"{left} connection objects still alive after their clients went away"
