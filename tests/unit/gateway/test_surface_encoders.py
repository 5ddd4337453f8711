"""The Anthropic and Ollama surfaces' encoders and error renderers: what a client sees when the
runtime's answer does not translate (a 502, or an error event that ends the stream), and the
gateway's own refusals in each API's shape."""

from __future__ import annotations

import orjson
import pytest

from inferplane.gateway.surfaces.anthropic import AnthropicEncoder, AnthropicSurface
from inferplane.gateway.surfaces.base import Rejection
from inferplane.gateway.surfaces.ollama import OllamaEncoder, OllamaSurface
from inferplane.protocol.errors import error_body


def test_the_gateways_own_refusals_in_anthropics_shape() -> None:
    status, body, headers = AnthropicSurface().error(Rejection(503, "no ready replica", code="model_not_ready"))
    assert status == 503 and ("Retry-After", "1") in headers
    assert orjson.loads(body) == {"type": "error", "error": {"type": "overloaded_error", "message": "no ready replica"}}
    runtime = Rejection(400, "x", body=error_body("prompt too long", "invalid_request_error"))
    assert orjson.loads(AnthropicSurface().error(runtime)[1])["error"] == {"type": "invalid_request_error",
                                                                          "message": "prompt too long"}


def test_the_gateways_own_refusals_in_ollamas_shape() -> None:
    status, body, _ = OllamaSurface().error(Rejection(401, "invalid or missing API key"))
    assert (status, orjson.loads(body)) == (401, {"error": "invalid or missing API key"})
    assert OllamaSurface().stream_error("broke", "upstream_stream_broken") == b'{"error":"broke"}\n'


@pytest.mark.parametrize("encoder", [AnthropicEncoder("m", None, 3), OllamaEncoder("chat", "m")])
def test_an_answer_that_does_not_translate_is_the_replicas_502(encoder) -> None:
    with pytest.raises(Rejection) as exc:
        encoder.body(b'{"choices": [{"message": "not an object"}]}')
    assert exc.value.status == 502 and exc.value.code == "upstream_invalid_response"


def test_a_chunk_that_does_not_translate_ends_the_anthropic_stream_with_an_error_event() -> None:
    enc = AnthropicEncoder("m", None, 3)
    out = enc.chunk(b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n')
    out += enc.chunk(b'data: {"choices":["garbage"]}\n\n')
    after = enc.chunk(b'data: {"choices":[{"index":0,"delta":{"content":"more"}}]}\n\ndata: [DONE]\n\n')
    events = [e for e in out.decode().split("\n\n") if e]
    assert events[-1].startswith("event: error\n") and "cannot carry" in events[-1]
    assert after == b"" and enc.error_event("late", "x") == b""  # nothing after the error event


def test_a_chunk_that_does_not_translate_ends_the_ollama_stream_with_an_error_line() -> None:
    enc = OllamaEncoder("chat", "m")
    out = enc.chunk(b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\ndata: {"choices":[7]}\n\n')
    lines = [orjson.loads(x) for x in out.splitlines()]
    assert lines[0]["message"]["content"] == "hi" and "cannot carry" in lines[-1]["error"]
    assert enc.chunk(b"data: [DONE]\n\n") == b""
