"""Requests the HTTP server refuses itself (413 before the body is read, 431) reach the observers."""

from __future__ import annotations

import asyncio
import re

from memory_gateway import memory_gateway

from inferplane.gateway import http1
from inferplane.gateway.http_limits import HttpLimits
from inferplane.gateway.memory_transport import MemoryRequest, MemoryWire


async def _never(req: MemoryRequest, wire: MemoryWire) -> None:
    raise AssertionError("no request may reach an upstream")


async def _exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    out = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    return out


def test_a_413_and_a_431_from_the_http_server_are_counted_on_their_route() -> None:
    async def main() -> None:
        gw, conn, rec = memory_gateway(_never)
        server = await http1.serve(gw.handle, "127.0.0.1", 0, max_body_bytes=100, on_refused=gw.refused)
        port = server.sockets[0].getsockname()[1]
        try:
            big = await _exchange(port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Request-Id: big-1\r\n"
                                        b"Content-Length: 5000\r\n\r\n")
            assert big.startswith(b"HTTP/1.1 413")
            wide = await _exchange(port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 9000 +
                                         b"\r\n\r\n")
            assert wide.startswith(b"HTTP/1.1 431")
            other = await _exchange(port, b"POST /elsewhere HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
            assert other.startswith(b"HTTP/1.1 413")  # refused too, but no surface's route: not a request
        finally:
            server.close()
            gw.close()
        done = [(r.request_id if r.request_id == "big-1" else "-", r.route.value, o.status)
                for e, r, o in rec.events if e == "finished"]
        assert done == [("big-1", "chat", 413), ("-", "completions", 431)]
        metrics = gw.metrics.render().decode()
        assert 'inferplane_requests_total{model="",route="chat",status="413"} 1.0' in metrics
        assert 'inferplane_requests_total{model="",route="completions",status="431"} 1.0' in metrics
        assert not conn.requests

    asyncio.run(main())


def _slow(delay_s: float):  # type: ignore[no-untyped-def]
    async def app(req: MemoryRequest, wire: MemoryWire) -> None:
        await asyncio.sleep(delay_s)
        wire.respond(200, b'{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[]}')
    return app


def test_a_429_for_too_many_pipelined_requests_and_a_503_at_the_connection_cap_are_counted() -> None:
    async def main() -> None:
        gw, conn, rec = memory_gateway(_slow(0.5))
        limits = HttpLimits(max_pipelined_requests=1, max_connections=1)
        server = await http1.serve(gw.handle, "127.0.0.1", 0, limits=limits, on_refused=gw.refused)
        port = server.sockets[0].getsockname()[1]
        body = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
        one = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        try:
            # the first is served, the second waits behind it, the third is one too many
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(one + one + one.replace(b"Host: x", b"Host: x\r\nX-Request-Id: piped-3"))
            await writer.drain()
            got = b""
            while got.count(b"HTTP/1.1 ") < 3:
                chunk = await asyncio.wait_for(reader.read(65536), 10)
                if not chunk:
                    break
                got += chunk
            writer.close()
            await asyncio.sleep(0.3)  # the server sees that connection go (same loop) before the next one
            assert re.findall(rb"HTTP/1\.1 (\d+)", got) == [b"200", b"200", b"429"]
            # one connection open (idle): the next one is over the cap
            _, idle_w = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.sleep(0.2)
            capped = await _exchange(port, b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nX-Request-Id: cap-1\r\n"
                                           b"Content-Length: 2\r\n\r\n{}")
            assert capped.startswith(b"HTTP/1.1 503"), capped
            idle_w.close()
        finally:
            server.close()
            gw.close()
        refused = [(r.request_id, r.route.value, o.status, o.error_code) for e, r, o in rec.events
                   if e == "finished" and o.status >= 400]
        assert refused == [("piped-3", "chat", 429, "too_many_pipelined_requests"),
                           ("cap-1", "embeddings", 503, "too_many_connections")]
        metrics = gw.metrics.render().decode()
        assert 'inferplane_requests_total{model="",route="chat",status="429"} 1.0' in metrics
        assert 'inferplane_requests_total{model="",route="embeddings",status="503"} 1.0' in metrics
        assert len(conn.requests) == 2  # only the two served reached an upstream

    asyncio.run(main())
