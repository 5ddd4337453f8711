from __future__ import annotations

import pytest

from inferplane.protocol.openai import check_chat, check_completion

MSGS = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": MSGS}, "model"),
    ({"model": 3, "messages": MSGS}, "model"),
    ({"model": "m"}, "messages"),
    ({"model": "m", "messages": "hi"}, "messages"),
    ({"model": "m", "messages": ["hi"]}, "messages[0]"),
    ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content"),
    ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"model": "m", "messages": MSGS, "max_tokens": 0}, "max_tokens"),
    ({"model": "m", "messages": MSGS, "max_tokens": True}, "max_tokens"),
    ({"model": "m", "messages": MSGS, "max_completion_tokens": 1.5}, "max_completion_tokens"),
    ({"model": "m", "messages": MSGS, "temperature": 3}, "temperature"),
    ({"model": "m", "messages": MSGS, "top_p": -0.1}, "top_p"),
    ({"model": "m", "messages": MSGS, "seed": "1"}, "seed"),
    ({"model": "m", "messages": MSGS, "n": 2}, "n"),
    ({"model": "m", "messages": MSGS, "stream": "yes"}, "stream"),
    ({"model": "m", "messages": MSGS, "stop": [1]}, "stop"),
    ({"model": "m", "messages": MSGS, "stream_options": {"include_usage": True}}, "stream_options"),
    ({"model": "m", "messages": MSGS, "response_format": {"type": "yaml"}}, "response_format"),
    ({"model": "m", "messages": MSGS, "response_format": {"type": "json_schema"}}, "response_format"),
    ({"model": "m", "messages": MSGS, "logprobs": 1}, "logprobs"),
    ({"model": "m", "messages": MSGS, "top_logprobs": 50}, "top_logprobs"),
])
def test_chat_problems_name_the_parameter(body: dict, param: str) -> None:
    problem = check_chat(body)
    assert problem is not None and problem.param == param and problem.message


@pytest.mark.parametrize("body", [
    {"model": "m", "messages": MSGS},
    {"model": "m", "messages": MSGS, "stream": True, "stream_options": {"include_usage": True},
     "max_tokens": 5, "temperature": 0, "top_p": 1, "seed": 1, "n": 1, "stop": ["\n"],
     "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
     "logprobs": True, "top_logprobs": 2},
    {"model": "m", "messages": [{"role": "assistant", "content": None, "tool_calls": []}, *MSGS]},
    {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
])
def test_valid_chat_bodies_pass(body: dict) -> None:
    assert check_chat(body) is None


def test_n_above_one_is_allowed_when_the_runtime_supports_it() -> None:
    assert check_chat({"model": "m", "messages": MSGS, "n": 2}, max_n=4) is None


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "m"}, "prompt"),
    ({"model": "m", "prompt": 3}, "prompt"),
    ({"model": "m", "prompt": []}, "prompt"),
    ({"model": "m", "prompt": "x", "logprobs": 9}, "logprobs"),
])
def test_completion_problems(body: dict, param: str) -> None:
    problem = check_completion(body)
    assert problem is not None and problem.param == param


def test_valid_completion() -> None:
    assert check_completion({"model": "m", "prompt": ["a", "b"], "logprobs": 2}) is None


IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}


@pytest.mark.parametrize(("content", "parts", "param", "code"), [
    ([{"type": "video"}], None, "messages[1].content[0].type", "invalid_value"),
    ([{"type": "text", "text": "a"}, {"type": "text", "text": 5}], None, "messages[1].content[1].text", "invalid_type"),
    ([{"type": "text", "text": "a"}, IMAGE], frozenset({"text"}), "messages[1].content[1].type", "unsupported_value"),
])
def test_chat_checks_content_parts_on_the_same_walk(content: list, parts: frozenset[str] | None, param: str,
                                                    code: str) -> None:
    body = {"model": "m", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": content}]}
    problem = check_chat(body, parts=parts, runtime="embedded")
    assert problem is not None and (problem.param, problem.code) == (param, code)
    if code == "unsupported_value":  # names the runtime and what it takes
        assert "embedded" in problem.message and "'text'" in problem.message
        assert check_chat(body) is None  # any known part type, where the runtime's are not known


def test_chat_takes_known_parts_and_assistant_turns_without_content() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, IMAGE]},
                                       {"role": "assistant", "content": None, "tool_calls": []}]}
    assert check_chat(body, parts=frozenset({"text", "image_url"}), runtime="vllm") is None
