"""An in-process gateway in front of in-process misbehaving upstreams, for the proxy's failure tests.

``faulty_app(mode)`` is an OpenAI-compatible upstream (aiohttp) that misbehaves one way:

- ``ok``: a chat completion, or a stream ending with ``data: [DONE]`` (llama.cpp's order);
- ``image_500``: llama.cpp's answer to an image part sent to a text model, byte for byte as
  the embedded runtime (xllamacpp, llama.cpp's server) answered it on this machine:
  500 ``{"error":{"code":500,"message":"image input is not supported - hint: ...","type":"server_error"}}``;
- ``opaque_500``: the same 500 with a message that does not say whose fault it is, for every request;
- ``dying_500``: a 500 whose message differs per request (a replica in trouble);
- ``html_200`` / ``bad_json_200``: a 200 whose body is an HTML page / broken JSON;
- ``huge_200``: a 200 JSON body of ``HUGE_BYTES``;
- ``no_done``: a stream that ends (cleanly, chunked) without ``data: [DONE]``;
- ``stall``: a stream that sends one chunk and then nothing (the connection stays open);
- ``ratelimit``: 429 with ``Retry-After: 7``, ``x-ratelimit-remaining-requests: 0``, ``x-request-id: up-1``;
- ``drop``: closes the connection without an answer (a replica killed mid-request);
- ``context``: llama.cpp's exceed_context_size_error (400, integer ``code``), as the embedded
  runtime answered a 12,031-token prompt with a 4,096-token context.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable

import orjson
from aiohttp import web

from inferplane.config import DeploymentConfig, GatewayConfig
from inferplane.config.models import BreakerConfig, ReplicaTarget, RetryConfig
from inferplane.gateway import http1
from inferplane.gateway.app import Gateway
from inferplane.gateway.tenancy.setup import build_tenancy
from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.runtimes.registry import get_adapter

__all__ = ["HUGE_BYTES", "faulty_upstream", "running_gateway"]

HUGE_BYTES = 3 * 1024 * 1024
IMAGE_500 = (b'{"error":{"code":500,"message":"image input is not supported - hint: if this is unexpected, '
             b'you may need to provide the mmproj","type":"server_error"}}')
CONTEXT_400 = (b'{"error":{"code":400,"message":"request (12031 tokens) exceeds the available context size '
               b'(4096 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":12031,'
               b'"n_ctx":4096}}')


def _chunk(delta: dict, finish: str | None = None) -> bytes:
    body = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(body) + b"\n\n"


def faulty_app(mode: str, seen: dict[str, int], on_chat: Callable[[], None] | None = None) -> web.Application:
    counter = itertools.count(1)
    app = web.Application()
    seen["chat_requests"] = 0

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen["chat_requests"] += 1
        n = next(counter)
        if on_chat is not None:
            on_chat()
        if mode == "drop":
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        if mode == "image_500":
            return web.Response(status=500, body=IMAGE_500, content_type="application/json")
        if mode == "opaque_500":
            return web.json_response({"error": {"code": 500, "message": "something odd", "type": "server_error"}},
                                     status=500)
        if mode == "dying_500":
            return web.json_response({"error": {"code": 500, "message": f"engine step {n} failed",
                                                "type": "server_error"}}, status=500)
        if mode == "html_200":
            return web.Response(body=b"<html><title>Welcome to nginx</title></html>", content_type="text/html")
        if mode == "bad_json_200":
            return web.Response(body=b'{"choices": [', content_type="application/json")
        if mode == "huge_200":
            return web.Response(body=b'{"pad":"' + b"x" * HUGE_BYTES + b'"}', content_type="application/json")
        if mode == "ratelimit":
            return web.json_response({"error": {"message": "slow down", "type": "rate_limit_error"}}, status=429,
                                     headers={"Retry-After": "7", "x-ratelimit-remaining-requests": "0",
                                              "x-request-id": "up-1"})
        if mode == "context":
            return web.Response(status=400, body=CONTEXT_400, content_type="application/json")
        if not body.get("stream"):
            return web.json_response({
                "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}},
                headers={"x-request-id": "up-ok"})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(_chunk({"role": "assistant", "content": None}))
        await resp.write(_chunk({"content": "hel"}))
        if mode == "stall":
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:  # the gateway closed the connection: the "slot" is free
                seen["cancelled"] = seen.get("cancelled", 0) + 1
                raise
        await resp.write(_chunk({"content": "lo"}))
        await resp.write(_chunk({}, "stop"))
        if mode != "no_done":
            await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def health(_r: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def models(_r: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})

    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    return app


@contextlib.asynccontextmanager
async def faulty_upstream(mode: str, on_chat: Callable[[], None] | None = None
                          ) -> AsyncIterator[tuple[str, dict[str, int]]]:
    """Serves ``faulty_app(mode)``; yields its base URL and its counters (``chat_requests``).

    ``on_chat`` runs as each chat request arrives (in the test's event loop).
    """
    seen: dict[str, int] = {}
    app = faulty_app(mode, seen, on_chat)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def running_gateway(urls: list[str], *, runtime: str = "openai", max_attempts: int = 3,
                          **gateway: object) -> AsyncIterator[tuple[Gateway, str]]:
    """A Gateway serving deployment ``m`` from ``urls`` (all ready at once), on a free port."""
    dep = DeploymentConfig(name="m", runtime=runtime, replicas=0, policy="round_robin",
                           endpoints=tuple(ReplicaTarget(url=u) for u in urls),
                           retry=RetryConfig(max_attempts=max_attempts, backoff_s=0),
                           breaker=BreakerConfig(failure_threshold=5, open_s=10))
    cfg = GatewayConfig(port=0, **gateway)  # type: ignore[arg-type]
    registry = EndpointRegistry()
    tenancy = build_tenancy(cfg)  # keys and tenants as serve builds them
    gw = Gateway(cfg, (dep,), registry, admission=tenancy.admission, observers=(tenancy.observer,))
    adapter = get_adapter(runtime)
    for u in urls:
        ep = Endpoint(id=registry.new_id("m"), deployment="m", runtime=runtime, url=u,
                      dialect=adapter.dialect_for(dep), capacity=4, managed=False)
        registry.add(ep)
        registry.set_ready(ep, True)
    server = await http1.serve(gw.handle, "127.0.0.1", 0, max_body_bytes=cfg.max_body_bytes)
    port = server.sockets[0].getsockname()[1]
    try:
        yield gw, f"http://127.0.0.1:{port}"
    finally:
        server.close()
        gw.close()
