"""Anthropic Messages <-> OpenAI chat, on what the real anthropic SDK sends and what real runtimes answer.

Requests: recorded live from the official SDK (tests/fixtures/surfaces/live). Answers: recorded live
from the embedded runtime (tests/fixtures/embedded/live) and OpenAI-typed tool calls. What comes out
is checked against the SDK's own models and its own stream accumulator, and against Anthropic's
recorded event order (tests/fixtures/surfaces).
"""

from __future__ import annotations

import json
from pathlib import Path

import anthropic
import anthropic.types as at
import orjson
import pytest

try:
    import httpx2 as httpx  # the HTTP client anthropic 2.x is built on
except ImportError:  # older SDKs use httpx
    import httpx

from inferplane.protocol.anthropic import (
    error_body,
    error_from_openai,
    estimate_tokens,
    messages_to_openai,
    openai_to_message,
    sse_event,
)
from inferplane.protocol.anthropic_stream import OpenAIToAnthropicStream
from inferplane.protocol.errors import NotTranslatable
from inferplane.protocol.openai import check_chat
from inferplane.protocol.parts import check_parts, check_tools

FIX = Path(__file__).parents[2] / "fixtures"
SURF = FIX / "surfaces"


def _sdk_final_message(sse: bytes) -> at.Message:
    """What the official SDK's ``messages.stream(...).get_final_message()`` builds from ``sse``."""
    def answer(_req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=sse, headers={"content-type": "text/event-stream"})
    client = anthropic.Anthropic(api_key="k", base_url="http://127.0.0.1:9",
                                 http_client=httpx.Client(transport=httpx.MockTransport(answer)))
    with client.messages.stream(model="smollm2", max_tokens=8, messages=[{"role": "user", "content": "x"}]) as s:
        return s.get_final_message()


def _live(name: str) -> dict:
    return json.loads((SURF / "live" / name).read_text())["body"]


def _events(sse: bytes) -> list[tuple[str, dict]]:
    out = []
    for block in sse.decode().split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def _translate_stream(data: bytes, step: int, **kw: object) -> bytes:
    tr = OpenAIToAnthropicStream("smollm2", **kw)
    return b"".join(tr.feed(data[i : i + step]) for i in range(0, len(data), step))


# -- requests --------------------------------------------------------------------------------------

def test_sdk_request_with_system_blocks_tools_and_sampling_becomes_openai_chat() -> None:
    out = messages_to_openai(_live("anthropic_messages_create.json"))
    assert out["model"] == "smollm2" and out["max_tokens"] == 64
    assert out["messages"] == [
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert out["stop"] == ["\n\n"] and out["temperature"] == 0.2 and out["top_p"] == 0.9 and out["top_k"] == 40
    assert out["user"] == "u-1" and out["tool_choice"] == "auto"
    assert out["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    assert "stream" not in out
    # what the gateway's own OpenAI checks accept
    assert check_chat(out) is None and check_tools(out, True, "embedded") is None


def test_tool_use_and_tool_result_blocks_become_tool_calls_and_tool_messages() -> None:
    out = messages_to_openai(_live("anthropic_messages_tool_result.json"))
    msgs = out["messages"]
    assert msgs[0] == {"role": "system", "content": "You answer briefly."}
    assert msgs[2] == {"role": "assistant", "content": "Let me check.", "tool_calls": [
        {"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}
    assert msgs[3] == {"role": "tool", "tool_call_id": "toolu_01", "content": "18 C, sunny"}
    assert msgs[4] == {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="}},
        {"type": "text", "text": "And this picture?"}]}
    assert out["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert out["parallel_tool_calls"] is False
    assert check_chat(out) is None and check_parts(out, None, "vllm") is None


def test_a_stream_request_asks_the_runtime_for_usage() -> None:
    out = messages_to_openai(_live("anthropic_messages_stream.json"))
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none"),
    ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
])
def test_tool_choice(choice: dict, expected: object) -> None:
    body = {**_live("anthropic_messages_create.json"), "tool_choice": choice}
    assert messages_to_openai(body)["tool_choice"] == expected


@pytest.mark.parametrize(("change", "param"), [
    ({"max_tokens": None}, "max_tokens"), ({"max_tokens": 0}, "max_tokens"), ({"model": ""}, "model"),
    ({"messages": []}, "messages"), ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}, "messages.0.content.0.type"),
    ({"temperature": 1.5}, "temperature"), ({"top_k": -1}, "top_k"), ({"stop_sequences": "x"}, "stop_sequences"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0.type"),
    ({"tools": [{"name": "f"}]}, "tools.0.input_schema"), ({"tool_choice": {"type": "sometimes"}}, "tool_choice"),
    ({"system": [{"type": "image"}]}, "system.0"),
])
def test_bad_requests_name_the_field(change: dict, param: str) -> None:
    body = {**_live("anthropic_messages_create.json"), **change}
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(NotTranslatable) as exc:
        messages_to_openai(body)
    assert exc.value.param == param


def test_count_tokens_body_needs_no_max_tokens_and_has_an_estimate() -> None:
    body = _live("anthropic_count_tokens.json")
    out = messages_to_openai(body, count_only=True)
    assert out["messages"][0] == {"role": "system", "content": "You answer briefly."}
    assert 1 <= estimate_tokens(body) < 20


# -- whole answers ---------------------------------------------------------------------------------

def test_a_live_runtime_answer_becomes_a_message_the_sdk_parses() -> None:
    openai = json.loads((FIX / "embedded" / "live" / "chat.json").read_text())
    msg = openai_to_message(openai, "smollm2")
    parsed = at.Message.model_validate(msg)
    assert parsed.content[0].type == "text"
    assert parsed.content[0].text == openai["choices"][0]["message"]["content"]
    assert parsed.stop_reason == "end_turn" and parsed.usage.input_tokens == 37 and parsed.usage.output_tokens == 14
    assert set(msg) == set(json.loads((SURF / "anthropic_message.json").read_text()))
    assert msg["id"].startswith("msg_")


def test_tool_calls_become_tool_use_blocks_and_cached_tokens_are_cache_reads() -> None:
    msg = openai_to_message(json.loads((SURF / "openai_tool_call.json").read_text()), "smollm2")
    parsed = at.Message.model_validate(msg)
    assert [b.type for b in parsed.content] == ["text", "tool_use"]
    tool = parsed.content[1]
    assert tool.name == "get_weather" and tool.input == {"city": "Paris"} and tool.id == "call_0123456789"
    assert parsed.stop_reason == "tool_use"
    assert parsed.usage.input_tokens == 20 and parsed.usage.cache_read_input_tokens == 100


@pytest.mark.parametrize(("finish", "extra", "reason", "sequence"), [
    ("stop", {}, "end_turn", None), ("length", {}, "max_tokens", None), ("content_filter", {}, "refusal", None),
    ("stop", {"stop_reason": "END"}, "stop_sequence", "END"),  # vLLM names the stop string it matched
    ("stop", {"stop_reason": 2}, "end_turn", None),  # a stop token id is the model's own end
])
def test_stop_reasons(finish: str, extra: dict, reason: str, sequence: str | None) -> None:
    obj = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": finish,
                        **extra}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
    msg = openai_to_message(obj, "m", stop_sequences=["END"])
    assert (msg["stop_reason"], msg["stop_sequence"]) == (reason, sequence)


def test_tool_arguments_that_are_not_json_are_refused() -> None:
    obj = {"choices": [{"message": {"tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]},
                        "finish_reason": "tool_calls"}]}
    with pytest.raises(NotTranslatable):
        openai_to_message(obj, "m")


# -- streams ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("step", [1, 7, 64, 100_000])
def test_a_live_runtime_stream_becomes_anthropics_event_sequence(step: int) -> None:
    data = (FIX / "embedded" / "live" / "chat_stream.txt").read_bytes()
    events = _events(_translate_stream(data, step))
    names = [n for n, _ in events]
    recorded = [n for n, _ in _events((SURF / "anthropic_stream_text.txt").read_bytes())]
    collapse = lambda ns: [n for i, n in enumerate(ns) if i == 0 or n != ns[i - 1]]  # noqa: E731
    assert collapse(names) == collapse(recorded)
    assert all(n == d["type"] for n, d in events)
    snapshot = _sdk_final_message(_translate_stream(data, step))
    expected = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                       for line in data.decode().splitlines()
                       if line.startswith("data: {") and json.loads(line[6:])["choices"])
    assert snapshot.content[0].text == expected
    assert snapshot.stop_reason == "end_turn"
    assert snapshot.usage.output_tokens == 14 and snapshot.usage.input_tokens == 1  # 37 prompt, 36 of them cached
    assert snapshot.usage.cache_read_input_tokens == 36


@pytest.mark.parametrize("step", [1, 13, 100_000])
def test_a_tool_call_stream_becomes_a_tool_use_block_with_input_json_deltas(step: int) -> None:
    events = _events(_translate_stream((SURF / "openai_tool_stream.txt").read_bytes(), step))
    names = [n for n, _ in events]
    recorded = [n for n, _ in _events((SURF / "anthropic_stream_tool.txt").read_bytes())]
    collapse = lambda ns: [n for i, n in enumerate(ns) if i == 0 or n != ns[i - 1]]  # noqa: E731
    assert collapse(names) == collapse(recorded)
    snapshot = _sdk_final_message(_translate_stream((SURF / "openai_tool_stream.txt").read_bytes(), step))
    assert [b.type for b in snapshot.content] == ["text", "tool_use"]
    assert snapshot.content[1].input == {"city": "Paris"} and snapshot.content[1].name == "get_weather"
    assert snapshot.stop_reason == "tool_use"


def test_an_error_event_mid_stream_becomes_anthropics_error_event_and_ends_the_stream() -> None:
    tr = OpenAIToAnthropicStream("m")
    out = tr.feed(b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
                  b'data: {"error":{"message":"the stream from ep broke off","type":"upstream_error"}}\n\n')
    events = _events(out)
    assert events[-1] == ("error", {"type": "error", "error": {"type": "api_error",
                                                                "message": "the stream from ep broke off"}})
    assert tr.finished and tr.feed(b"data: [DONE]\n\n") == b""


@pytest.mark.parametrize("model", ["m", 'a "quoted"/model', "modèle-ü"])
def test_the_first_chunks_events_made_ahead_are_the_bytes_sse_event_makes(model: str) -> None:
    tr = OpenAIToAnthropicStream(model, None, 42)
    out = tr.feed(b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n')
    message = {"id": tr.id, "type": "message", "role": "assistant", "model": model, "content": [],
               "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 42, "output_tokens": 0}}
    assert out == (sse_event("message_start", {"type": "message_start", "message": message})
                   + sse_event("content_block_start", {"type": "content_block_start", "index": 0,
                                                       "content_block": {"type": "text", "text": ""}})
                   + sse_event("ping", {"type": "ping"})
                   + sse_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                       "delta": {"type": "text_delta", "text": "hi"}}))


def test_an_empty_answer_still_has_one_text_block() -> None:
    events = _events(OpenAIToAnthropicStream("m").feed(b"data: [DONE]\n\n"))
    assert [n for n, _ in events] == ["message_start", "content_block_start", "ping", "content_block_stop",
                                      "message_delta", "message_stop"]


# -- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "kind"), [
    (400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"),
    (404, "not_found_error"), (413, "request_too_large"), (429, "rate_limit_error"), (500, "api_error"),
    (502, "api_error"), (503, "overloaded_error"), (504, "timeout_error"), (422, "invalid_request_error"),
])
def test_errors_in_anthropics_shape(status: int, kind: str) -> None:
    body = error_from_openai(status, orjson.dumps({"error": {"message": "nope", "type": "x"}}), "req_1")
    parsed = at.ErrorResponse.model_validate(orjson.loads(body)) if kind != "request_too_large" else None
    out = orjson.loads(body)
    assert out == {"type": "error", "error": {"type": kind, "message": "nope"}, "request_id": "req_1"}
    if parsed is not None:
        assert parsed.error.type == kind
    assert set(orjson.loads(error_body(404, "x"))) | {"request_id"} == set(
        json.loads((SURF / "anthropic_error.json").read_text()))
