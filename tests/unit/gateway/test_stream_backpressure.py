"""A streamed answer through the gateway over real sockets (127.0.0.1): a client that stops
reading holds the runtime back instead of making the gateway buffer the whole answer, and it
gets every byte, in order, once it reads again."""

from __future__ import annotations

import asyncio
import hashlib
import socket

import httptools
import orjson

from inferplane.config import DeploymentConfig, GatewayConfig
from inferplane.config.models import ReplicaTarget
from inferplane.gateway import http1
from inferplane.gateway.app import Gateway
from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.runtimes.registry import get_adapter

_TEXT = b"x" * 65_000
_EVENT = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,' \
         b'"delta":{"content":"' + _TEXT + b'"},"finish_reason":null}]}\n\n'
_EVENTS = 2_000  # 130 MB: more than the sockets' buffers on the way can hold (tcp_rmem allows 32 MB)
_DONE = b"data: [DONE]\n\n"


class _Runtime:
    """Streams ``_EVENTS`` events as fast as the gateway reads them; counts what it got rid of."""

    def __init__(self) -> None:
        self.written = 0
        self.finished = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65_536)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        frame = b"%x\r\n%s\r\n" % (len(_EVENT), _EVENT)
        try:
            for _ in range(_EVENTS):
                writer.write(frame)
                await writer.drain()
                self.written += len(_EVENT)
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(_DONE), _DONE))
            await writer.drain()
        finally:
            self.finished.set()
            writer.close()


class _Body:
    """The client's side: the response body as it arrives (a hash and a length, not a copy)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.sha = hashlib.sha256()
        self.length = 0
        self.complete = False

    def feed(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.sha.update(body)
        self.length += len(body)

    def on_message_complete(self) -> None:
        self.complete = True


async def _plateau(runtime: _Runtime, timeout_s: float = 20.0) -> int:
    """What the runtime wrote once it stopped making progress (two equal looks 0.5 s apart)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last = -1
    while loop.time() < deadline and not runtime.finished.is_set():
        now = runtime.written
        if now == last:
            return now
        last = now
        await asyncio.sleep(0.5)
    return runtime.written


def test_a_client_that_stops_reading_pauses_the_runtime_and_then_gets_every_byte() -> None:
    async def main() -> None:
        runtime = _Runtime()
        upstream = await asyncio.start_server(runtime.serve, "127.0.0.1", 0)
        up_url = f"http://127.0.0.1:{upstream.sockets[0].getsockname()[1]}"
        dep = DeploymentConfig(name="m", runtime="openai", replicas=0, endpoints=(ReplicaTarget(url=up_url),))
        registry = EndpointRegistry()
        gw = Gateway(GatewayConfig(port=0), (dep,), registry)
        ep = Endpoint(id=registry.new_id("m"), deployment="m", runtime="openai", url=up_url,
                      dialect=get_adapter("openai").dialect_for(dep), capacity=4, managed=False)
        registry.add(ep)
        registry.set_ready(ep, True)
        server = await http1.serve(gw.handle, "127.0.0.1", 0)
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65_536)
        client.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_connect(client, server.sockets[0].getsockname())
            body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True})
            await loop.sock_sendall(client, b"POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\n"
                                            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            got = await asyncio.wait_for(loop.sock_recv(client, 65_536), 10)
            assert got.startswith(b"HTTP/1.1 200")

            paused_at = await _plateau(runtime)  # the client reads nothing meanwhile
            assert not runtime.finished.is_set()
            assert paused_at < _EVENTS * len(_EVENT) // 2, paused_at  # held back, not read into the gateway

            answer = _Body()
            answer.feed(got)
            while not answer.complete:  # now the client reads everything
                data = await asyncio.wait_for(loop.sock_recv(client, 1 << 20), 20)
                assert data, "the gateway closed the stream early"
                answer.feed(data)
            assert runtime.written == _EVENTS * len(_EVENT)
            expected = hashlib.sha256()
            for _ in range(_EVENTS):
                expected.update(_EVENT)
            expected.update(_DONE)
            assert (answer.length, answer.sha.hexdigest()) == (_EVENTS * len(_EVENT) + len(_DONE),
                                                               expected.hexdigest())
        finally:
            client.close()
            server.close()
            upstream.close()
            gw.close()
            await server.wait_closed()

    asyncio.run(main())
