"""The Responder the Anthropic and Ollama surfaces hand the OpenAI request path: what a client
sees when the runtime's answer does not translate (a 502, or an error event that ends the
stream), and that the gateway's own errors arrive in the client's shape."""

from __future__ import annotations

import asyncio

import orjson

from inferplane.gateway.surfaces.anthropic import AnthropicSurface, _Encoder
from inferplane.gateway.surfaces.ollama import OllamaSurface
from inferplane.gateway.surfaces.ollama import _Encoder as OllamaEncoder
from inferplane.protocol.errors import error_body


class _Out:
    """What a Responder was asked to write."""

    def __init__(self) -> None:
        self.started = False
        self.status = 0
        self.keep_alive = True
        self.headers: list[tuple[str, str]] = []
        self.body = b""

    def send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.started, self.status, self.body, self.headers = True, status, body, headers

    def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.started, self.status, self.headers = True, status, headers

    async def write(self, data: bytes) -> None:
        self.body += data

    def end(self) -> None:
        pass


def _anthropic() -> tuple[_Out, object]:
    inner = _Out()
    out = AnthropicSurface(None).wrap(inner)  # type: ignore[arg-type]
    out.encoder = _Encoder("m", None, 3)
    return inner, out


def test_the_gateways_own_error_arrives_in_anthropics_shape_with_its_request_id() -> None:
    inner, out = _anthropic()
    out.send(404, error_body("the model 'x' does not exist", "invalid_request_error"), [("x-request-id", "r1")])
    assert inner.status == 404 and dict(inner.headers)["request-id"] == "r1"
    assert orjson.loads(inner.body) == {"type": "error", "request_id": "r1",
                                        "error": {"type": "not_found_error", "message": "the model 'x' does not exist"}}


def test_an_answer_that_does_not_translate_is_a_502_in_the_clients_shape() -> None:
    inner, out = _anthropic()
    out.send(200, b'{"choices": [{"message": "not an object"}]}', [("Content-Type", "application/json")])
    assert inner.status == 502 and orjson.loads(inner.body)["error"]["type"] == "api_error"
    inner = _Out()
    oout = OllamaSurface(None).wrap(inner)  # type: ignore[arg-type]
    oout.encoder = OllamaEncoder("chat", "m")
    oout.send(200, b"[1, 2]", [])
    assert inner.status == 502 and "cannot be expressed" in orjson.loads(inner.body)["error"]


def test_a_chunk_that_does_not_translate_ends_the_stream_with_an_error_event() -> None:
    inner, out = _anthropic()

    async def run() -> None:
        out.start(200, [("Content-Type", "text/event-stream")])
        await out.write(b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n')
        await out.write(b'data: {"choices":["garbage"]}\n\n')
        await out.write(b'data: {"choices":[{"index":0,"delta":{"content":"more"}}]}\n\ndata: [DONE]\n\n')
        out.end()

    asyncio.run(run())
    assert dict(inner.headers)["Content-Type"] == "text/event-stream"
    events = [e for e in inner.body.decode().split("\n\n") if e]
    assert events[-1].startswith("event: error\n") and "cannot carry" in events[-1]
    assert "more" not in inner.body.decode() and "message_stop" not in inner.body.decode()
