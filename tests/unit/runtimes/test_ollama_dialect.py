"""The Ollama dialect: OpenAI requests in, native API out, and the answers back as OpenAI."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from inferplane.protocol.sse import DONE, SSEDecoder
from inferplane.runtimes.base import UnsupportedRequest
from inferplane.runtimes.ollama_dialect import OllamaDialect

FIX = Path(__file__).parents[2] / "fixtures" / "ollama"
D = OllamaDialect("smollm2:135m")


def _req(route: str, **body: object) -> tuple[str, dict]:
    raw = orjson.dumps(body)
    path, sent = D.request(route, orjson.loads(raw), raw)
    return path, orjson.loads(sent)


def test_chat_request_uses_ollama_names_and_the_models_tag() -> None:
    path, sent = _req("chat", model="smol", messages=[{"role": "user", "content": "hi"}], stream=True,
                      max_tokens=7, temperature=0.2, top_p=0.9, stop=["a", "b"], seed=1, frequency_penalty=0.5,
                      presence_penalty=0.1, top_k=20, repetition_penalty=1.1,
                      response_format={"type": "json_schema", "json_schema": {"schema": {"type": "object"}}})
    assert path == "/api/chat"
    assert sent["model"] == "smollm2:135m" and sent["stream"] is True
    assert sent["messages"] == [{"role": "user", "content": "hi"}]
    assert sent["options"] == {"num_predict": 7, "temperature": 0.2, "top_p": 0.9, "stop": ["a", "b"], "seed": 1,
                               "frequency_penalty": 0.5, "presence_penalty": 0.1, "top_k": 20,
                               "repeat_penalty": 1.1}
    assert sent["format"] == {"type": "object"}


def test_completions_go_to_generate_raw_and_unset_stream_is_false() -> None:
    path, sent = _req("completions", model="smol", prompt="Once", max_completion_tokens=3)
    assert path == "/api/generate"
    assert sent == {"model": "smollm2:135m", "stream": False, "options": {"num_predict": 3}, "prompt": "Once",
                    "raw": True}


def test_images_and_tool_calls_are_reshaped() -> None:
    _, sent = _req("chat", model="smol", messages=[
        {"role": "user", "content": [{"type": "text", "text": "what is "},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "f", "content": "2"},
    ])
    assert sent["messages"][0] == {"role": "user", "content": "what is ", "images": ["AAAA"]}
    assert sent["messages"][1]["tool_calls"] == [{"function": {"name": "f", "arguments": {"x": 1}}}]
    assert sent["messages"][2] == {"role": "tool", "content": "2", "tool_name": "f"}


@pytest.mark.parametrize(("body", "param"), [
    ({"n": 2}, "n"), ({"logprobs": True}, "logprobs"), ({"top_logprobs": 2}, "top_logprobs"),
    ({"logit_bias": {"1": 5}}, "logit_bias"), ({"tool_choice": "required"}, "tool_choice"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]},
     "messages"),
    ({"response_format": {"type": "grammar"}}, "response_format"),
])
def test_parameters_ollama_cannot_honour_are_rejected(body: dict, param: str) -> None:
    with pytest.raises(UnsupportedRequest) as exc:
        D.request("chat", {"model": "smol", "messages": [], **body}, b"")
    assert exc.value.param == param


def test_native_answer_becomes_a_chat_completion() -> None:
    status, body = D.response("chat", "smol", 200, (FIX / "api_chat.json").read_bytes())
    out = orjson.loads(body)
    assert status == 200 and out["object"] == "chat.completion" and out["model"] == "smol"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "Hello! How can I help you today?"}
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"] == {"prompt_tokens": 31, "completion_tokens": 10, "total_tokens": 41}
    _, gen = D.response("completions", "smol", 200, (FIX / "api_generate.json").read_bytes())
    assert orjson.loads(gen)["choices"][0]["text"] == "Hello! How can I help you today?"


def test_tool_calls_in_an_answer_get_ids_and_string_arguments() -> None:
    native = {"message": {"role": "assistant", "content": "",
                          "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]},
              "done": True, "done_reason": "stop", "prompt_eval_count": 1, "eval_count": 2}
    out = orjson.loads(D.response("chat", "smol", 200, orjson.dumps(native))[1])
    call = out["choices"][0]["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert orjson.loads(call["function"]["arguments"]) == {"x": 1}
    assert out["choices"][0]["finish_reason"] == "tool_calls"


def test_native_errors_become_openai_errors() -> None:
    status, body = D.response("chat", "smol", 404, b'{"error": "model \'gpt-4\' not found"}')
    assert status == 404
    assert orjson.loads(body)["error"] == {"message": "model 'gpt-4' not found", "type": "not_found_error",
                                           "param": None, "code": None}


@pytest.mark.parametrize("step", [1, 2, 7, 64, 10_000])
def test_ndjson_stream_split_anywhere_becomes_openai_sse(step: int) -> None:
    data = (FIX / "api_chat_stream.ndjson").read_bytes()
    tr = D.stream("chat", "smol", include_usage=True)
    sse = b"".join(tr.feed(data[i : i + step]) for i in range(0, len(data), step)) + tr.end()
    dec = SSEDecoder()
    events = list(dec.feed(sse))
    assert events[-1] == DONE
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == "Hello! How can I help you today?"
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]][-1] == "stop"
    # OpenAI's order: the usage-only chunk (no choices) comes last
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 31, "completion_tokens": 10, "total_tokens": 41}
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "smol" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1


def test_no_usage_chunk_unless_the_client_asked() -> None:
    data = (FIX / "api_chat_stream.ndjson").read_bytes()
    tr = D.stream("chat", "smol")
    chunks = [orjson.loads(e) for e in SSEDecoder().feed(tr.feed(data) + tr.end()) if e != DONE]
    assert all(c["choices"] and "usage" not in c for c in chunks)


def test_an_error_line_mid_stream_becomes_an_error_event() -> None:
    tr = D.stream("chat", "smol")
    out = tr.feed(b'{"message":{"role":"assistant","content":"a"},"done":false}\n{"error":"boom"}\n') + tr.end()
    events = list(SSEDecoder().feed(out))
    assert orjson.loads(events[1])["error"]["message"] == "boom"
