"""Content part and tools checks (issue 10.2: rejected before a runtime answers them with a 500)."""

from __future__ import annotations

import pytest

from inferplane.protocol.parts import check_parts, check_tools

TEXT_ONLY = frozenset({"text"})
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}


def _chat(*parts: object, **extra: object) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": list(parts)}], **extra}


def test_text_only_runtime_rejects_image_and_audio_naming_what_it_takes() -> None:
    p = check_parts(_chat({"type": "text", "text": "hi"}, IMAGE), TEXT_ONLY, "embedded")
    assert p is not None and p.param == "messages[0].content[1].type" and "'text'" in p.message
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    assert check_parts(_chat(audio), TEXT_ONLY, "embedded") is not None
    assert check_parts(_chat({"type": "text", "text": "hi"}), TEXT_ONLY, "embedded") is None
    assert check_parts(_chat(IMAGE), None, "vllm") is None  # unknown: left to the runtime


@pytest.mark.parametrize("part", [{"type": "video"}, {"text": "no type"}, "a string", {"type": "text", "text": 5}])
def test_malformed_parts_are_rejected_everywhere(part: object) -> None:
    assert check_parts(_chat(part), None, "vllm") is not None


@pytest.mark.parametrize(("extra", "param"), [
    ({"tools": "nope"}, "tools"),
    ({"tools": [1]}, "tools[0]"),
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]},
     "tools[0].function.parameters"),
    ({"tool_choice": "sometimes"}, "tool_choice"),
    ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice"),
])
def test_malformed_tools_are_rejected(extra: dict, param: str) -> None:
    p = check_tools(_chat(**extra), True, "embedded")
    assert p is not None and p.param == param


def test_good_tools_pass_and_a_runtime_without_tools_says_so() -> None:
    body = _chat(tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
                 tool_choice="auto")
    assert check_tools(body, True, "embedded") is None
    p = check_tools(body, False, "mlc")
    assert p is not None and p.code == "unsupported_value" and p.param == "tools"


def test_a_template_without_tools_is_named_and_none_still_passes() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    p = check_tools(_chat(tools=tools), False, "embedded", reason="the chat template does not render tools")
    assert p is not None and p.param == "tools" and "chat template does not render tools" in p.message
    assert check_tools(_chat(tools=tools, tool_choice="none"), False, "embedded") is None


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "f"}}])
def test_a_forced_choice_the_runtime_does_not_enforce_is_refused(choice: object) -> None:
    body = _chat(tools=[{"type": "function", "function": {"name": "f"}}], tool_choice=choice)
    assert check_tools(body, True, "vllm") is None
    p = check_tools(body, True, "embedded", forced_choice=False, forced_reason="llama.cpp drops it")
    assert p is not None and p.param == "tool_choice" and p.code == "unsupported_value"
    assert check_tools({**body, "tool_choice": "auto"}, True, "embedded", forced_choice=False) is None
