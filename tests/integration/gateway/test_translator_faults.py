"""A dialect translator that cannot read a runtime's stream (malformed Ollama NDJSON) mid-stream:
the client's stream ends with an error event, the upstream connection is closed (the runtime stops
generating), and the request is counted - over real sockets, with the official openai client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import openai
import pytest
from aiohttp import web
from proxy_harness import running_gateway

from helpers import http_get

pytestmark = pytest.mark.integration

GOOD = (b'{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"hel"},'
        b'"done":false}\n')
BROKEN = b'{"model":"m","message":{"role":"assistant","content":"lo"},"done":fals\n'


@contextlib.asynccontextmanager
async def broken_ollama() -> AsyncIterator[tuple[str, dict[str, int]]]:
    """Ollama's /api/chat streaming one good NDJSON line, then a broken one, then nothing (still generating)."""
    seen = {"cancelled": 0}

    async def chat(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        await resp.write(GOOD)
        await asyncio.sleep(0.05)
        await resp.write(BROKEN)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:  # the gateway closed the connection: generation stops
            seen["cancelled"] += 1
            raise
        return resp

    app = web.Application()
    app.router.add_post("/api/chat", chat)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


def test_malformed_ndjson_mid_stream_ends_the_stream_with_an_error_and_closes_the_upstream() -> None:
    async def main() -> None:
        async with broken_ollama() as (up, seen), running_gateway([up], runtime="ollama") as (gw, url):
            client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20)
            text = []
            with pytest.raises(openai.APIError) as exc:
                stream = await client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        text.append(chunk.choices[0].delta.content)
            assert "could not be read" in str(exc.value)
            assert text == ["hel"]
            for _ in range(100):  # the upstream sees its connection close (bounded wait)
                if seen["cancelled"]:
                    break
                await asyncio.sleep(0.05)
            assert seen["cancelled"] == 1
            assert gw.registry.endpoints("m")[0].in_flight == 0
            _, body = await asyncio.to_thread(http_get, url + "/metrics")
            assert b'inferplane_requests_total{model="m",route="chat",status="502"} 1.0' in body

    asyncio.run(asyncio.wait_for(main(), 60))
