"""Requests the HTTP server refuses itself (413 before the body is read, 431) reach the observers."""

from __future__ import annotations

import asyncio

from memory_gateway import memory_gateway

from inferplane.gateway import http1
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
