"""A surface added without touching the gateway's core: its routes, its key header, its
encoder and its error shape, over the same attempt loop (a toy API, for the contract)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import orjson
from memory_gateway import call, memory_gateway, sse

from inferplane.gateway.http_messages import Request
from inferplane.gateway.memory_transport import MemoryRequest, MemoryWire
from inferplane.gateway.surfaces import (
    InferenceRequest,
    OpenAISurface,
    Rejection,
    Surface,
    SurfaceRoute,
)
from inferplane.gateway.surfaces.base import Lookup
from inferplane.protocol.routes import Route, SurfaceName


class ToyEncoder:
    stream_content_type = "application/x-toy"

    def body(self, data: bytes) -> bytes:
        return orjson.dumps({"toy": orjson.loads(data)["choices"][0]["message"]["content"]})

    def chunk(self, data: bytes) -> bytes:
        return b"".join(b"toy " + e[6:] + b"\n" for e in data.split(b"\n\n") if e.startswith(b"data: {"))

    def end(self) -> bytes:
        return b"toy end\n"

    def error_event(self, message: str, code: str) -> bytes:
        return b"toy error " + code.encode() + b"\n"


class ToySurface(Surface):
    name = SurfaceName.ANTHROPIC  # any name the enum has
    key_headers = ("x-toy-key",)

    def routes(self) -> Iterable[SurfaceRoute]:
        return (SurfaceRoute("/toy/ask", "POST", Route.CHAT),)

    def parse(self, route: Route, request: Request, served: Lookup) -> InferenceRequest:
        q = orjson.loads(request.body)
        s = served(q.get("m", ""))
        if s is None:
            raise Rejection(404, "no such toy model", code="toy_model")
        data = {"model": s.config.name, "messages": [{"role": "user", "content": q["q"]}],
                "stream": bool(q.get("s")), "stream_options": {"include_usage": True}}
        return InferenceRequest(route, s, data, orjson.dumps(data), bool(q.get("s")), True)

    def encoder(self, req: InferenceRequest) -> ToyEncoder:
        return ToyEncoder()

    def error(self, rejection: Rejection) -> tuple[int, bytes, list[tuple[str, str]]]:
        return rejection.status, orjson.dumps({"toy_error": rejection.code}), [("Content-Type", "application/json")]

    def stream_error(self, message: str, code: str) -> bytes:
        raise AssertionError("an encoder is always there")


ANSWER = (b'{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
          b'"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}]}')


async def upstream(req: MemoryRequest, wire: MemoryWire) -> None:
    if not orjson.loads(req.body).get("stream"):
        wire.respond(200, ANSWER)
        return
    wire.start()
    wire.chunk(sse({"content": "hel"}))
    await asyncio.sleep(0)
    wire.chunk(sse({}, "stop") + b"data: [DONE]\n\n")
    wire.end()


def test_a_new_surface_serves_its_routes_with_its_own_shapes() -> None:
    async def main() -> None:
        gw2, conn, _ = memory_gateway(upstream, api_keys=("k",), surfaces=(OpenAISurface(), ToySurface()))
        key = {"x-toy-key": "k"}
        whole = await call(gw2, {"m": "m", "q": "hi"}, path="/toy/ask", headers=key)
        assert (whole.status, whole.json()) == (200, {"toy": "hello"})
        assert orjson.loads(conn.requests[-1].body)["messages"][0]["content"] == "hi"
        streamed = await call(gw2, {"m": "m", "q": "hi", "s": 1}, path="/toy/ask", headers=key)
        assert streamed.headers["content-type"] == "application/x-toy"
        lines = streamed.body.decode().splitlines()
        assert lines[0].startswith("toy {") and lines[-1] == "toy end"
        assert (await call(gw2, {"m": "x", "q": "hi"}, path="/toy/ask", headers=key)).json() == {"toy_error": "toy_model"}
        unauth = await call(gw2, {"m": "m", "q": "hi"}, path="/toy/ask", headers={"authorization": "Bearer k"})
        assert (unauth.status, unauth.json()) == (401, {"toy_error": "invalid_api_key"})
        openai = await call(gw2, {"model": "m", "messages": [{"role": "user", "content": "x"}]},
                            headers={"authorization": "Bearer k"})
        assert openai.status == 200 and openai.body == ANSWER
        assert 'inferplane_requests_total{model="m",route="chat",status="200"} 3.0' in gw2.metrics.render().decode()
        assert not conn.errors

    asyncio.run(main())
