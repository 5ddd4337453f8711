"""Ollama's API over any runtime, both directions of the OpenAI <-> Ollama translation.

Requests: what the official ollama client sends (recorded live, tests/fixtures/surfaces/live).
Answers: the embedded runtime's recorded OpenAI answers in, Ollama objects out, read back with
the ollama client's own models and compared with Ollama's shapes (tests/fixtures/ollama, surfaces).
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from ollama import ChatResponse, EmbedResponse, GenerateResponse

from inferplane.protocol.errors import NotTranslatable
from inferplane.protocol.ollama import chat_to_ollama, ollama_chat_to_openai
from inferplane.protocol.ollama_surface import (
    OpenAIToOllamaStream,
    chat_from_ollama,
    embed_from_ollama,
    error_from_openai,
    generate_from_ollama,
    openai_to_chat,
    openai_to_embed,
    openai_to_generate,
)
from inferplane.protocol.openai import check_chat, check_completion

FIX = Path(__file__).parents[2] / "fixtures"
LIVE = FIX / "surfaces" / "live"
NATIVE = FIX / "ollama"


def _live(name: str) -> dict:
    return json.loads((LIVE / name).read_text())["body"]


def test_client_chat_becomes_openai_chat_with_options_mapped() -> None:
    out = chat_from_ollama(_live("ollama_chat.json"))
    assert out == {"model": "smollm2",
                   "messages": [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "Hi"}],
                   "temperature": 0, "top_p": 0.9, "seed": 7, "top_k": 40, "max_tokens": 32, "stop": ["\n\n"],
                   "response_format": {"type": "json_object"}}
    assert check_chat(out) is None


def test_stream_is_ollamas_default_and_asks_for_usage() -> None:
    body = _live("ollama_chat_stream.json")
    assert chat_from_ollama(body)["stream_options"] == {"include_usage": True}
    assert chat_from_ollama({k: v for k, v in body.items() if k != "stream"})["stream"] is True


def test_tool_calls_get_string_arguments_and_tool_results_point_at_their_call() -> None:
    out = chat_from_ollama(_live("ollama_chat_tools.json"))
    call = out["messages"][1]["tool_calls"][0]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert out["messages"][2] == {"role": "tool", "content": "18 C, sunny", "name": "get_weather",
                                  "tool_call_id": call["id"]}
    assert out["tools"][0]["function"]["name"] == "get_weather"
    assert check_chat(out) is None


def test_generate_is_a_chat_turn_and_raw_generate_is_a_completion() -> None:
    route, out = generate_from_ollama(_live("ollama_generate.json"))
    assert route == "chat" and out["messages"] == [{"role": "system", "content": "You answer briefly."},
                                                   {"role": "user", "content": "Why is the sky blue?"}]
    assert out["max_tokens"] == 16 and "stream" not in out
    route, out = generate_from_ollama(_live("ollama_generate_raw_stream.json"))
    assert route == "completions" and out["prompt"] == "Once upon a time" and out["stream"] is True
    assert check_completion(out) is None


def test_a_json_schema_format_becomes_response_format_json_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    out = chat_from_ollama({**_live("ollama_chat.json"), "format": schema})
    assert out["response_format"] == {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    assert check_chat(out) is None


def test_images_become_data_url_parts() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "what?", "images": ["/9j/4AAQSkZJRg=="]}]}
    part = chat_from_ollama(body)["messages"][0]["content"][1]
    assert part == {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}}


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": []}, "model"), ({"model": "m", "stream": "yes"}, "stream"),
    ({"model": "m", "options": {"num_predict": 0}}, "options"), ({"model": "m", "format": "yaml"}, "format"),
    ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0]"),
    ({"model": "m", "messages": [{"role": "user", "content": "x", "images": ["***"]}]}, "messages[0].images"),
])
def test_bad_chat_requests_name_the_field(body: dict, param: str) -> None:
    with pytest.raises(NotTranslatable) as exc:
        chat_from_ollama(body)
    assert exc.value.param == param


@pytest.mark.parametrize(("extra", "param"), [({"context": [1, 2]}, "context"), ({"suffix": "x"}, "suffix"),
                                               ({"template": "{{ .Prompt }}"}, "template")])
def test_generate_fields_no_openai_runtime_can_honour_are_refused(extra: dict, param: str) -> None:
    with pytest.raises(NotTranslatable) as exc:
        generate_from_ollama({"model": "m", "prompt": "x", **extra})
    assert exc.value.param == param


def test_ollama_backend_and_ollama_surface_round_trip_the_sampling_fields() -> None:
    client = _live("ollama_chat.json")
    native = chat_to_ollama(chat_from_ollama(client), "smollm2:135m")
    sampling = {k: v for k, v in client["options"].items() if k != "num_ctx"}  # num_ctx is a load setting
    assert native["options"] == sampling and native["format"] == "json"
    assert native["messages"] == client["messages"]


# -- answers ---------------------------------------------------------------------------------------

def test_a_live_runtime_answer_becomes_an_ollama_chat_response() -> None:
    openai = json.loads((FIX / "embedded" / "live" / "chat.json").read_text())
    out = openai_to_chat(openai, "smollm2", total_ns=5_500_000_000)
    parsed = ChatResponse(**out)
    assert parsed.message.content == openai["choices"][0]["message"]["content"]
    assert parsed.done and parsed.done_reason == "stop"
    assert (parsed.prompt_eval_count, parsed.eval_count) == (37, 14)
    assert parsed.prompt_eval_duration == 3_429_816_000 and parsed.eval_duration == 1_838_909_000  # llama.cpp timings
    assert parsed.total_duration == 5_500_000_000
    native = json.loads((NATIVE / "api_chat.json").read_text())
    assert set(out) == set(native) - {"load_duration"}  # replicas are loaded before they serve
    assert out["created_at"].endswith("Z") and len(out["created_at"]) == len("2026-01-01T00:00:01.234567Z")


def test_tool_calls_in_an_answer_become_ollama_tool_calls_with_object_arguments() -> None:
    out = openai_to_chat(json.loads((FIX / "surfaces" / "openai_tool_call.json").read_text()), "m", total_ns=1)
    call = ChatResponse(**out).message.tool_calls[0]
    assert call.function.name == "get_weather" and call.function.arguments == {"city": "Paris"}
    # and the backend direction reads it back as the same OpenAI tool call
    back = ollama_chat_to_openai(out, "m")["choices"][0]["message"]["tool_calls"][0]
    assert orjson.loads(back["function"]["arguments"]) == {"city": "Paris"} and back["id"] == "call_0123456789"


def test_a_completion_answer_becomes_a_generate_response() -> None:
    obj = {"choices": [{"index": 0, "text": " there was", "finish_reason": "length"}],
           "usage": {"prompt_tokens": 4, "completion_tokens": 2}}
    parsed = GenerateResponse(**openai_to_generate(obj, "m", total_ns=10))
    assert parsed.response == " there was" and parsed.done_reason == "length" and parsed.eval_count == 2


@pytest.mark.parametrize("step", [1, 5, 64, 100_000])
def test_a_live_runtime_stream_becomes_ndjson_the_client_reads(step: int) -> None:
    data = (FIX / "embedded" / "live" / "chat_stream.txt").read_bytes()
    ticks = iter(range(1_000_000_000, 10**12, 1_000_000))  # 1 ms a call
    tr = OpenAIToOllamaStream("chat", "smollm2", t0_ns=0, clock=lambda: next(ticks))
    out = b"".join(tr.feed(data[i : i + step]) for i in range(0, len(data), step))
    lines = [json.loads(line) for line in out.splitlines()]
    parts = [ChatResponse(**line) for line in lines]
    assert all(not p.done for p in parts[:-1]) and parts[-1].done and tr.finished
    text = "".join(p.message.content or "" for p in parts)
    assert text == "Hello, I'm here to help with any creative writing project."
    last = parts[-1]
    assert last.done_reason == "stop" and (last.prompt_eval_count, last.eval_count) == (37, 14)
    assert last.prompt_eval_duration == 157_380_000  # from the runtime's timings
    assert last.total_duration >= 1_000_000_000
    native = [json.loads(line) for line in (NATIVE / "api_chat_stream.ndjson").read_text().splitlines()]
    assert set(lines[0]) == set(native[0]) and set(lines[-1]) == set(native[-1]) - {"load_duration"}


def test_a_tool_call_stream_sends_the_call_whole_before_the_final_object() -> None:
    tr = OpenAIToOllamaStream("chat", "m", t0_ns=0, clock=lambda: 5)
    lines = [json.loads(x) for x in tr.feed((FIX / "surfaces" / "openai_tool_stream.txt").read_bytes()).splitlines()]
    calls = [ChatResponse(**x).message.tool_calls for x in lines if x["message"].get("tool_calls")]
    assert len(calls) == 1 and calls[0][0].function.arguments == {"city": "Paris"}
    assert lines[-1]["done"] is True and lines[-2]["message"]["tool_calls"]


def test_a_generate_stream_without_timings_measures_durations_itself() -> None:
    ticks = iter([100, 300, 900])
    tr = OpenAIToOllamaStream("generate", "m", t0_ns=0, clock=lambda: next(ticks))
    out = tr.feed(b'data: {"choices":[{"index":0,"text":"a"}]}\n\ndata: {"choices":[{"index":0,"text":"b"}]}\n\n'
                  b'data: {"choices":[{"index":0,"text":"","finish_reason":"length"}],'
                  b'"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\ndata: [DONE]\n\n')
    lines = [GenerateResponse(**json.loads(x)) for x in out.splitlines()]
    assert [x.response for x in lines] == ["a", "b", ""]
    last = lines[-1]
    assert (last.total_duration, last.prompt_eval_duration, last.eval_duration) == (900, 100, 200)
    assert last.done_reason == "length"


def test_errors_become_ollamas_error_shape_in_bodies_and_streams() -> None:
    body = error_from_openai(b'{"error":{"message":"the model \'x\' does not exist","type":"invalid_request_error"}}')
    assert orjson.loads(body) == {"error": "the model 'x' does not exist"}
    assert set(orjson.loads(body)) == set(json.loads((FIX / "surfaces" / "ollama_error.json").read_text()))
    tr = OpenAIToOllamaStream("chat", "m", t0_ns=0)
    out = tr.feed(b'data: {"error":{"message":"broke off","type":"upstream_error"}}\n\n')
    assert json.loads(out) == {"error": "broke off"} and tr.finished


def test_embed_request_and_answer_round_trip_ollamas_shapes() -> None:
    out = embed_from_ollama(_live("ollama_embed.json"))
    assert out == {"model": "smollm2-embed", "input": ["hello", "world"], "encoding_format": "float"}
    assert embed_from_ollama({"model": "m", "input": "one"})["input"] == ["one"]
    with pytest.raises(NotTranslatable):
        embed_from_ollama({"model": "m", "input": [1, 2]})
    answer = json.loads((FIX / "surfaces" / "openai_embeddings.json").read_text())
    got = openai_to_embed(answer, "smollm2-embed", total_ns=14143917)
    parsed = EmbedResponse(**got)
    native = json.loads((FIX / "surfaces" / "ollama_embed.json").read_text())
    assert [list(v) for v in parsed.embeddings] == native["embeddings"]  # in input order, whatever the order sent
    assert set(got) == set(native) - {"load_duration"} and got["prompt_eval_count"] == 8
