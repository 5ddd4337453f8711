"""protocol/responses.py: Responses requests onto chat, chat answers back, checked with openai-python's types."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pydantic
import pytest
from openai.types.chat import ChatCompletion
from openai.types.responses import Response, ResponseStreamEvent

from inferplane.protocol.responses import ResponsesStream, check_responses, to_chat, to_response

FIX = Path(__file__).parents[2] / "fixtures" / "responses"
EVENTS = pydantic.TypeAdapter(ResponseStreamEvent)
RID = "resp_0123456789abcdef01234567"


def _req(**kw: Any) -> dict[str, Any]:
    return {"model": "smollm2", "input": "Name a colour.", **kw}


@pytest.mark.parametrize(("body", "messages"), [
    (_req(), [{"role": "user", "content": "Name a colour."}]),
    (_req(instructions="Answer briefly."),
     [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Name a colour."}]),
    (_req(input=[{"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]}]),
     [{"role": "user", "content": "ab"}]),
    (_req(input=[{"type": "message", "role": "developer", "content": "be terse"},
                 {"role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
                 {"role": "user", "content": "go"}]),
     [{"role": "developer", "content": "be terse"}, {"role": "assistant", "content": "ok"},
      {"role": "user", "content": "go"}]),
    (_req(input=[{"role": "user", "content": "weather?"},
                 {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
                 {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{\"x\":1}"},
                 {"type": "function_call_output", "call_id": "c1", "output": "sunny"}]),
     [{"role": "user", "content": "weather?"},
      {"role": "assistant", "content": None, "tool_calls": [
          {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}},
          {"id": "c2", "type": "function", "function": {"name": "w", "arguments": "{\"x\":1}"}}]},
      {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]),
])
def test_input_becomes_chat_messages(body: dict[str, Any], messages: list[dict[str, Any]]) -> None:
    assert check_responses(body) is None
    assert to_chat(body)["messages"] == messages


def test_settings_map_onto_chat_fields() -> None:
    body = _req(max_output_tokens=7, temperature=0.5, top_p=0.9, stream=True, parallel_tool_calls=False,
                tools=[{"type": "function", "name": "w", "description": "d", "parameters": {"type": "object"},
                        "strict": True}],
                tool_choice={"type": "function", "name": "w"},
                text={"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}})
    assert check_responses(body) is None
    chat = to_chat(body)
    assert chat["max_tokens"] == 7 and chat["temperature"] == 0.5 and chat["top_p"] == 0.9
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert chat["parallel_tool_calls"] is False
    assert chat["tools"] == [{"type": "function", "function": {"name": "w", "description": "d",
                                                               "parameters": {"type": "object"}, "strict": True}}]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "w"}}
    assert chat["response_format"] == {"type": "json_schema", "json_schema": {"name": "n",
                                                                              "schema": {"type": "object"}}}


@pytest.mark.parametrize(("body", "param", "code"), [
    ({"input": "x"}, "model", "missing_required_parameter"),
    ({"model": "m"}, "input", "missing_required_parameter"),
    (_req(input=""), "input", "invalid_value"),
    (_req(input=[]), "input", "invalid_type"),
    (_req(input=[{"role": "robot", "content": "x"}]), "input[0].role", "invalid_value"),
    (_req(input=[{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]),
     "input[0].content[0].type", "unsupported_value"),
    (_req(input=[{"type": "reasoning", "summary": []}]), "input[0].type", "unsupported_value"),
    (_req(max_output_tokens=0), "max_output_tokens", "invalid_value"),
    (_req(temperature=3), "temperature", "invalid_value"),
    (_req(previous_response_id="resp_1"), "previous_response_id", "unsupported_parameter"),
    (_req(conversation="c"), "conversation", "unsupported_parameter"),
    (_req(background=True), "background", "unsupported_parameter"),
    (_req(top_logprobs=2), "top_logprobs", "unsupported_parameter"),
    (_req(tools=[{"type": "web_search"}]), "tools[0].type", "unsupported_value"),
    (_req(tool_choice="sometimes"), "tool_choice", "invalid_value"),
    (_req(text={"format": {"type": "xml"}}), "text.format.type", "invalid_value"),
])
def test_bad_requests_name_the_field(body: dict[str, Any], param: str, code: str) -> None:
    p = check_responses(body)
    assert p is not None and (p.param, p.code) == (param, code)


def test_a_recorded_chat_answer_becomes_a_valid_response() -> None:
    chat = orjson.loads((FIX / "chat_stop.json").read_bytes())
    ChatCompletion.model_validate(chat)
    body = _req(instructions="Answer briefly.", max_output_tokens=200, temperature=0)
    resp = Response.model_validate(to_response(chat, body, rid=RID, created_at=1.0))
    assert resp.status == "completed" and resp.incomplete_details is None
    assert resp.output_text == chat["choices"][0]["message"]["content"]
    assert resp.instructions == "Answer briefly." and resp.max_output_tokens == 200
    assert resp.usage is not None
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (21, 6)
    assert resp.usage.input_tokens_details.cached_tokens == 20
    assert resp.usage.total_tokens == 27


def test_a_length_cut_is_incomplete_with_its_reason() -> None:
    chat = orjson.loads((FIX / "chat.json").read_bytes())
    chat["choices"][0]["finish_reason"] = "length"
    resp = Response.model_validate(to_response(chat, _req(max_output_tokens=8), rid=RID))
    assert resp.status == "incomplete"
    assert resp.incomplete_details is not None and resp.incomplete_details.reason == "max_output_tokens"


def test_tool_calls_become_function_call_items() -> None:
    chat = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "w", "arguments": "{\"c\":\"Paris\"}"}}]}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}
    ChatCompletion.model_validate(chat)
    resp = Response.model_validate(to_response(chat, _req(tools=[{"type": "function", "name": "w"}]), rid=RID))
    (item,) = resp.output
    assert item.type == "function_call"
    assert (item.call_id, item.name, item.arguments) == ("call_a", "w", "{\"c\":\"Paris\"}")


def _events(raw: bytes) -> list[Any]:
    out = []
    for block in raw.split(b"\n\n"):
        if not block:
            continue
        kind_line, data_line = block.split(b"\n")
        data = orjson.loads(data_line.removeprefix(b"data: "))
        assert kind_line == b"event: " + data["type"].encode()
        out.append(EVENTS.validate_python(data))
    return out


@pytest.mark.parametrize("piece", [1, 7, 64, 100_000])
def test_a_recorded_stream_becomes_the_responses_event_sequence(piece: int) -> None:
    raw = (FIX / "chat_stream.txt").read_bytes()
    stream = ResponsesStream(_req(max_output_tokens=8), rid=RID, created_at=1.0)
    out = b"".join(stream.feed(raw[i:i + piece]) for i in range(0, len(raw), piece)) + stream.end()
    events = _events(out)
    kinds = [e.type for e in events]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * len(deltas),
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(deltas)
    assert text == "The colour is red."
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == text
    final = events[-1].response
    assert final.output_text == text and final.status == "completed"
    assert final.usage is not None and final.usage.output_tokens == 6


def test_streamed_tool_calls_are_function_call_items() -> None:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return b"data: " + orjson.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + b"\n\n"
    up = (chunk({"role": "assistant", "content": None})
          + chunk({"tool_calls": [{"index": 0, "id": "call_x", "type": "function",
                                   "function": {"name": "w", "arguments": ""}}]})
          + chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"c\":"}}]})
          + chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]})
          + chunk({}, "tool_calls") + b"data: [DONE]\n\n")
    stream = ResponsesStream(_req(), rid=RID)
    events = _events(stream.feed(up) + stream.end())
    kinds = [e.type for e in events]
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.function_call_arguments.delta", "response.function_call_arguments.delta",
                     "response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    (item,) = events[-1].response.output
    assert (item.type, item.call_id, item.name, item.arguments) == ("function_call", "call_x", "w", "{\"c\":1}")


def test_an_upstream_error_event_becomes_an_error_event_and_nothing_after() -> None:
    stream = ResponsesStream(_req(), rid=RID)
    out = stream.feed(b'data: {"error": {"message": "boom", "code": 500}}\n\n')
    events = _events(out)
    assert [e.type for e in events][-1] == "error"
    assert events[-1].message == "boom" and events[-1].code == "500"
    assert stream.end() == b""
