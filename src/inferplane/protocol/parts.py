"""Checks of what a chat request asks a runtime to take: content part types and tools.

Runtimes answer some of these with a 500 (llama.cpp, for an image part sent to a text
model or ``tools`` that is not an array), which would look like a replica failure; the
gateway rejects them first with a 400 that says what the deployment accepts. O(number of
messages and parts), never O(prompt length).
"""

from __future__ import annotations

import re
from typing import Any

from inferplane.protocol.problems import RequestProblem

__all__ = ["check_content", "check_parts", "check_tools"]

_KNOWN_PARTS = frozenset({"text", "image_url", "input_audio", "file", "refusal"})
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOOL_CHOICES = ("none", "auto", "required")


def check_parts(body: dict[str, Any], accepted: frozenset[str] | None, runtime: str) -> RequestProblem | None:
    """A content part the deployment cannot take (``accepted`` None: any known type).

    ``protocol.openai.check_chat`` makes the same check on its own walk over the messages.
    """
    msgs = body.get("messages")
    if not isinstance(msgs, list):
        return None
    for i, m in enumerate(msgs):
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            problem = check_content(i, content, accepted, runtime)
            if problem is not None:
                return problem
    return None


def check_content(i: int, content: list[Any], accepted: frozenset[str] | None, runtime: str) -> RequestProblem | None:
    """A part of ``messages[i].content`` (an array of parts) the deployment cannot take."""
    for j, part in enumerate(content):
        where = f"messages[{i}].content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(kind, str) or kind not in _KNOWN_PARTS:
            return RequestProblem(f"'{where}.type' must be one of {', '.join(sorted(_KNOWN_PARTS))}; "
                                  f"got {kind!r}", where + ".type", "invalid_value")
        if kind == "text" and not isinstance(part.get("text"), str):
            return RequestProblem(f"'{where}.text' must be a string", where + ".text", "invalid_type")
        if accepted is not None and kind not in accepted and kind != "refusal":
            return RequestProblem(
                f"'{where}' is a {kind!r} part, but this model's runtime ({runtime}) takes only "
                f"{', '.join(repr(a) for a in sorted(accepted))} parts", where + ".type", "unsupported_value")
    return None


def check_tools(body: dict[str, Any], supported: bool, runtime: str, *, reason: str = "",
                forced_choice: bool = True, forced_reason: str = "") -> RequestProblem | None:
    """``tools`` / ``tool_choice`` in OpenAI's shape, and only where the deployment can honour them.

    ``supported``: its replicas can call tools (``reason`` says why not, or what to set);
    ``forced_choice``: a ``tool_choice`` of "required" or a named function is enforced (else
    refused, ``forced_reason`` saying why). Never silently dropped: a request the runtime would
    answer with plain text instead of a tool call gets ``unsupported_value`` naming the field.
    ``tool_choice: "none"`` always passes: the runtime is asked not to call tools.
    """
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if tools is None and choice is None:
        return None
    problem = _tools_shape(tools, choice)
    if problem is not None:
        return problem
    if choice == "none":
        return None
    if not supported:
        param = "tools" if tools is not None else "tool_choice"
        why = reason or f"this model's runtime ({runtime}) does not take tool calls"
        return RequestProblem(f"'{param}' cannot be honoured: {why}", param, "unsupported_value")
    if not forced_choice and (choice == "required" or isinstance(choice, dict)):
        return RequestProblem(f"'tool_choice' {choice if isinstance(choice, str) else 'naming a function'} "
                              f"cannot be honoured by this model's runtime ({runtime}): {forced_reason}",
                              "tool_choice", "unsupported_value")
    return None


def _tools_shape(tools: Any, choice: Any) -> RequestProblem | None:
    if tools is not None:
        if not isinstance(tools, list):
            return RequestProblem("'tools' must be an array of tool objects", "tools", "invalid_type")
        for i, t in enumerate(tools):
            fn = t.get("function") if isinstance(t, dict) else None
            if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(fn, dict):
                return RequestProblem(f"'tools[{i}]' must be {{\"type\": \"function\", \"function\": {{...}}}}",
                                      f"tools[{i}]", "invalid_value")
            name = fn.get("name")
            if not isinstance(name, str) or not _TOOL_NAME.match(name):
                return RequestProblem(f"'tools[{i}].function.name' must be 1-64 letters, digits, _ or -",
                                      f"tools[{i}].function.name", "invalid_value")
            params = fn.get("parameters")
            if params is not None and not isinstance(params, dict):
                return RequestProblem(f"'tools[{i}].function.parameters' must be a JSON Schema object",
                                      f"tools[{i}].function.parameters", "invalid_type")
    if choice is not None and choice not in _TOOL_CHOICES:
        fn = choice.get("function") if isinstance(choice, dict) else None
        if not (isinstance(choice, dict) and choice.get("type") == "function" and isinstance(fn, dict)
                and isinstance(fn.get("name"), str)):
            return RequestProblem("'tool_choice' must be 'none', 'auto', 'required' or "
                                  "{\"type\": \"function\", \"function\": {\"name\": ...}}", "tool_choice",
                                  "invalid_value")
        if tools is None:
            return RequestProblem("'tool_choice' names a function but 'tools' is missing", "tool_choice",
                                  "invalid_value")
    return None
