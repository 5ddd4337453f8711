"""gateway/surfaces/openai_routes.py: which deployment a route may reach, and what goes upstream."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from openai.types.responses import Response

from inferplane.config import DeploymentConfig
from inferplane.gateway.surfaces.base import Rejection, Served
from inferplane.gateway.surfaces.openai_routes import (
    ResponsesEncoder,
    parse_embeddings,
    parse_responses,
    responses_encoder,
)
from inferplane.protocol.routes import Route
from inferplane.runtimes.base import Capabilities, ToolSupport
from inferplane.runtimes.embedded import GGUF_CAPABILITIES
from inferplane.runtimes.vllm import VLLM_CAPABILITIES

FIX = Path(__file__).parents[2] / "fixtures" / "responses"


def _s(runtime: str = "embedded", *, embeddings: bool = False, tools: ToolSupport | None = None) -> Served:
    caps: Capabilities = GGUF_CAPABILITIES if runtime == "embedded" else VLLM_CAPABILITIES
    return Served(DeploymentConfig(name="m", runtime=runtime, embeddings=embeddings), caps, 0, None,
                  tools or ToolSupport(True))


def test_embeddings_go_only_to_embeddings_deployments() -> None:
    body = {"model": "m", "input": "x"}
    p = parse_embeddings(body, b"raw", _s(embeddings=True))
    assert (p.route, p.body, responses_encoder(p)) == (Route.EMBEDDINGS, b"raw", None)
    with pytest.raises(Rejection) as e:
        parse_embeddings(body, b"raw", _s())
    assert e.value.status == 400 and "'embeddings: true'" in e.value.message
    with pytest.raises(Rejection) as e:
        parse_embeddings(body, b"raw", None)
    assert e.value.status == 404 and e.value.code == "model_not_found"


def test_dimensions_follow_the_runtime() -> None:
    body = {"model": "m", "input": "x", "dimensions": 8}
    with pytest.raises(Rejection) as e:
        parse_embeddings(body, b"", _s(embeddings=True))
    assert e.value.param == "dimensions"
    assert parse_embeddings(body, b"", _s("vllm", embeddings=True)).route is Route.EMBEDDINGS


def test_responses_pass_through_or_become_chat() -> None:
    body = {"model": "m", "input": "hi", "stream": True}
    through = parse_responses(body, b"raw", _s("vllm"), None)
    assert (through.route, through.body, responses_encoder(through)) == (Route.RESPONSES, b"raw", None)
    chat = parse_responses(body, b"raw", _s(), None)
    assert chat.route is Route.CHAT and responses_encoder(chat) is not None and chat.stream and chat.include_usage
    assert orjson.loads(chat.body)["messages"] == [{"role": "user", "content": "hi"}]
    with pytest.raises(Rejection, match="serves embeddings only"):
        parse_responses(body, b"raw", _s(embeddings=True), None)


def test_responses_tools_meet_the_deployments_tool_support() -> None:
    body = {"model": "m", "input": "hi", "tools": [{"type": "function", "name": "f"}]}
    with pytest.raises(Rejection) as e:
        parse_responses(body, b"", _s(tools=ToolSupport(False, "the template does not render tools")), None)
    assert (e.value.param, e.value.code) == ("tools", "unsupported_value")
    assert parse_responses(body, b"", _s(), None).route is Route.CHAT


def test_the_encoder_turns_a_recorded_chat_answer_into_a_response() -> None:
    enc = ResponsesEncoder({"model": "m", "input": "Name a colour."}, "resp_abc")
    resp = Response.model_validate(orjson.loads(enc.body((FIX / "chat_stop.json").read_bytes())))
    assert resp.id == "resp_abc" and resp.output_text == "The colour is red."
    stream = ResponsesEncoder({"model": "m", "input": "x"}, "resp_abc")
    out = stream.chunk(b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n')
    assert b"response.output_text.delta" in out
    err = stream.error_event("the stream broke off", "upstream_stream_broken")
    assert b"event: error" in err and b"upstream_stream_broken" in err and stream.end() == b""
