"""A null OpenAI server for calibrating the client: answers instantly with a fixed response.

Written on raw asyncio protocols (no HTTP framework) so that the server costs as little CPU
as possible and the calibration measures the client. Keep-alive HTTP/1.1, one response per
request: a chat completion with usage, or (``--stream``) a complete SSE stream with a role
chunk, two content chunks, a usage chunk and ``[DONE]`` in one write. Run it in its own
process: ``python -m inferplane.bench.null_server --port 8000 [--stream]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import orjson

__all__ = ["NullProtocol", "main", "response_bytes"]


def response_bytes(stream: bool) -> bytes:
    """The full HTTP response the null server sends for every request."""
    usage = {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10}
    if stream:
        events = [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
            {"choices": [{"index": 0, "delta": {"content": "ok"}}]},
            {"choices": [{"index": 0, "delta": {"content": " ok"}}]},
            {"choices": [], "usage": usage},
        ]
        body = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"
        ctype = b"text/event-stream"
    else:
        msg = {"role": "assistant", "content": "ok ok"}
        body = orjson.dumps(
            {
                "id": "null",
                "object": "chat.completion",
                "choices": [{"index": 0, "message": msg}],
                "usage": usage,
            }
        )
        ctype = b"application/json"
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: "
        + ctype
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
    )
    return head + body


class NullProtocol(asyncio.Protocol):
    """Parses just enough HTTP/1.1 (headers end, Content-Length) to answer each request."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].lower()
            i = head.find(b"content-length:")
            length = (
                int(head[i + 15 : head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None])
                if i >= 0
                else 0
            )
            total = end + 4 + length
            if len(buf) < total:
                break
            buf = buf[total:]
            assert self.transport is not None
            self.transport.write(self.response)
        self.buf = buf


async def serve(host: str, port: int, stream: bool) -> asyncio.Server:
    """Start listening; the caller owns the returned server."""
    response = response_bytes(stream)
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: NullProtocol(response), host, port, backlog=4096, reuse_address=True
    )


def main(argv: list[str] | None = None) -> None:
    """Serve until killed; prints ``READY <port>`` when listening."""
    ap = argparse.ArgumentParser(prog="python -m inferplane.bench.null_server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--stream", action="store_true")
    args = ap.parse_args(argv)

    async def run() -> None:
        server = await serve(args.host, args.port, args.stream)
        print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run  # type: ignore[assignment]
    with contextlib.suppress(KeyboardInterrupt):
        runner(run())


if __name__ == "__main__":
    main()
