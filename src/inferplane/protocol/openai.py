"""Cheap structural checks of OpenAI request bodies.

The gateway forwards request bytes unchanged, so it does not build models of them; it
checks just enough that a malformed request gets a clear 400 here instead of an
obscure error (or a 500) from a runtime. Each check is O(number of fields), never
O(prompt length).

Hot path (every chat request): values come from a JSON parser, so they have exact types
and ``type(v) is str`` stands in for ``isinstance`` where a check runs on every request
(a comparison, not a call); the messages are walked once, content parts included.
"""

from __future__ import annotations

from typing import Any

from inferplane.protocol.parts import check_content
from inferplane.protocol.problems import RequestProblem

__all__ = ["RequestProblem", "check_chat", "check_completion"]


_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_common(body: dict[str, Any], max_n: int) -> RequestProblem | None:
    model = body.get("model")
    if model is None:
        return RequestProblem("you must provide a model parameter", "model", "missing_required_parameter")
    if type(model) is not str or not model:
        return RequestProblem("'model' must be a non-empty string", "model", "invalid_type")
    stream = body.get("stream", False)
    if stream is not None and type(stream) is not bool:
        return RequestProblem("'stream' must be a boolean", "stream", "invalid_type")
    for key in ("max_tokens", "max_completion_tokens"):
        v = body.get(key)
        if v is not None and (type(v) is not int or v < 1):  # not _is_int(v), without the call
            return RequestProblem(f"'{key}' must be an integer >= 1, got {v!r}", key, "invalid_value")
    if _OPTIONS.isdisjoint(body):  # most bodies set none of the rest: one set operation, not nine lookups
        return None
    return _check_options(body, stream, max_n)


_OPTIONS = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty", "seed", "n", "stop",
                      "stream_options", "response_format"})
"""The fields ``_check_options`` checks."""


def _check_options(body: dict[str, Any], stream: Any, max_n: int) -> RequestProblem | None:
    for key, lo, hi in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0),
                        ("presence_penalty", -2.0, 2.0), ("frequency_penalty", -2.0, 2.0)):
        v = body.get(key)
        if v is not None and (not _is_num(v) or not lo <= v <= hi):
            return RequestProblem(f"'{key}' must be a number in [{lo}, {hi}], got {v!r}", key, "invalid_value")
    seed = body.get("seed")
    if seed is not None and not _is_int(seed):
        return RequestProblem("'seed' must be an integer", "seed", "invalid_type")
    n = body.get("n")
    if n is not None:
        if not _is_int(n) or n < 1:
            return RequestProblem(f"'n' must be an integer >= 1, got {n!r}", "n", "invalid_value")
        if n > max_n:
            return RequestProblem(
                f"'n' = {n} is not supported by this model's runtime (at most {max_n})", "n", "unsupported_value"
            )
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and len(stop) <= 16 and all(isinstance(s, str) for s in stop))
    ):
        return RequestProblem("'stop' must be a string or a list of at most 16 strings", "stop", "invalid_type")
    opts = body.get("stream_options")
    if opts is not None:
        if not isinstance(opts, dict):
            return RequestProblem("'stream_options' must be an object", "stream_options", "invalid_type")
        if not stream:
            return RequestProblem(
                "'stream_options' is only allowed when 'stream' is true", "stream_options", "invalid_value"
            )
    rf = body.get("response_format")
    if rf is not None:
        kind = rf.get("type") if isinstance(rf, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            return RequestProblem(
                "'response_format.type' must be one of 'text', 'json_object', 'json_schema'",
                "response_format", "invalid_value",
            )
        if kind == "json_schema" and not isinstance(rf.get("json_schema"), dict):
            return RequestProblem(
                "'response_format.json_schema' must be an object with a 'schema'", "response_format", "invalid_value"
            )
    return None


def check_chat(body: dict[str, Any], *, max_n: int = 1, parts: frozenset[str] | None = None,
               runtime: str = "") -> RequestProblem | None:
    """Problem with a ``/v1/chat/completions`` body, or None.

    Content parts are checked on the same walk over the messages (``protocol/parts.py``
    ``check_content``): ``parts`` are the part types the deployment's runtime takes (None:
    any known type), ``runtime`` names it in the message.
    """
    msgs = body.get("messages")
    if msgs is None:
        return RequestProblem("you must provide a 'messages' parameter", "messages", "missing_required_parameter")
    if type(msgs) is not list or not msgs:
        return RequestProblem("'messages' must be a non-empty array", "messages", "invalid_value")
    for i, m in enumerate(msgs):
        if type(m) is not dict:
            return RequestProblem(f"'messages[{i}]' must be an object", f"messages[{i}]", "invalid_type")
        role = m.get("role")
        if type(role) is not str or role not in _ROLES:  # an unhashable role must not raise
            return RequestProblem(
                f"'messages[{i}].role' must be one of {', '.join(sorted(_ROLES))}; got {role!r}",
                f"messages[{i}].role", "invalid_value",
            )
        content = m.get("content")
        if type(content) is str:
            continue
        if type(content) is list:
            problem = check_content(i, content, parts, runtime)
            if problem is not None:
                return problem
        elif content is not None:
            return RequestProblem(
                f"'messages[{i}].content' must be a string or an array of content parts",
                f"messages[{i}].content", "invalid_type",
            )
        elif role in ("user", "system", "developer"):
            return RequestProblem(f"'messages[{i}].content' is required", f"messages[{i}].content",
                                  "missing_required_parameter")
    if "logprobs" in body or "top_logprobs" in body:
        lp = body.get("logprobs")
        if lp is not None and not isinstance(lp, bool):
            return RequestProblem("'logprobs' must be a boolean", "logprobs", "invalid_type")
        tlp = body.get("top_logprobs")
        if tlp is not None and (not _is_int(tlp) or not 0 <= tlp <= 20):
            return RequestProblem("'top_logprobs' must be an integer in [0, 20]", "top_logprobs", "invalid_value")
    return _check_common(body, max_n)


def check_completion(body: dict[str, Any], *, max_n: int = 1) -> RequestProblem | None:
    """Problem with a ``/v1/completions`` body, or None."""
    prompt = body.get("prompt")
    if prompt is None:
        return RequestProblem("you must provide a 'prompt' parameter", "prompt", "missing_required_parameter")
    if not isinstance(prompt, (str, list)) or (isinstance(prompt, list) and not prompt):
        return RequestProblem(
            "'prompt' must be a string, an array of strings or an array of token ids", "prompt", "invalid_type"
        )
    lp = body.get("logprobs")
    if lp is not None and (not _is_int(lp) or not 0 <= lp <= 5):
        return RequestProblem("'logprobs' must be an integer in [0, 5]", "logprobs", "invalid_value")
    return _check_common(body, max_n)
