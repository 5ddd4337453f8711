"""A misbehaving OpenAI-compatible upstream for gateway failure tests.

Run as a script: ``python tests/fake_upstream.py PORT MODE`` where MODE is
- ``ok``: answers chat completions (plain and streamed, llama.cpp's chunk order);
- ``close_after_stream``: like ok, but a connection that carried a streamed response is
  dropped, without an answer, when the next request arrives on it - the way llama.cpp's
  server was seen dropping kept-alive connections;
- ``break_stream``: streams two content chunks, then aborts the TCP connection;
- ``status_500``: answers every completion with a 500;
- ``slow``: like ok, but waits 1 s before answering.
"""

from __future__ import annotations

import asyncio
import sys

import orjson
from aiohttp import web


def _chunk(delta: dict, finish: str | None = None) -> bytes:
    body = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": "fake",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(body) + b"\n\n"


def make_app(mode: str) -> web.Application:
    streamed: set[object] = set()

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if request.transport in streamed:
            streamed.discard(request.transport)
            request.transport.abort()
            raise asyncio.CancelledError
        if mode == "slow":
            await asyncio.sleep(1.0)
        if mode == "status_500":
            return web.json_response({"error": {"message": "boom", "type": "server_error"}}, status=500)
        if not body.get("stream"):
            return web.json_response({
                "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": "fake",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(_chunk({"role": "assistant", "content": None}))
        for word in ("hel", "lo"):
            await resp.write(_chunk({"content": word}))
            await asyncio.sleep(0.01)
        if mode == "break_stream":
            assert request.transport is not None
            request.transport.abort()
            return resp
        await resp.write(_chunk({}, "stop"))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        if mode == "close_after_stream":
            streamed.add(request.transport)
        return resp

    async def health(_r: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def models(_r: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    return app


if __name__ == "__main__":
    web.run_app(make_app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), print=None,
                access_log=None)
