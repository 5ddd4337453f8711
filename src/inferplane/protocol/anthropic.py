"""Anthropic Messages API <-> OpenAI chat, pure translation (no I/O, no gateway imports).

The Anthropic surface turns a ``POST /v1/messages`` body into an OpenAI chat request
(:func:`messages_to_openai`), lets the gateway serve that over any runtime, and turns the
OpenAI answer back: :func:`openai_to_message` for a whole answer, ``protocol/anthropic_stream.py``
for an SSE stream, :func:`error_from_openai` for an error. Shapes follow the official SDK's
types (``anthropic-sdk-python`` ``src/anthropic/types``); see tests/fixtures/surfaces.

Request mapping:
- ``system`` (a string or text blocks) -> a first ``system`` message;
- each message's blocks: ``text`` -> text, ``image`` (base64 or url source) -> an
  ``image_url`` part, ``tool_use`` (assistant) -> ``tool_calls`` (input as a JSON string),
  ``tool_result`` (user) -> ``tool`` messages placed before the rest of that user turn;
  ``thinking``/``redacted_thinking`` blocks are dropped (a runtime cannot check signatures);
- ``max_tokens`` -> ``max_tokens``; ``stop_sequences`` -> ``stop``; ``temperature``,
  ``top_p``, ``top_k`` as they are; ``metadata.user_id`` -> ``user``;
- ``tools`` -> function tools (``input_schema`` -> ``parameters``); ``tool_choice`` auto /
  any / tool / none -> "auto" / "required" / a named function / "none";
  ``disable_parallel_tool_use`` -> ``parallel_tool_calls: false``;
- ``stream`` -> ``stream`` with ``stream_options.include_usage`` (message_delta needs usage).

Answer mapping: ``finish_reason`` stop -> ``end_turn`` (``stop_sequence`` when the runtime
names the stop string it matched, as vLLM's ``stop_reason`` does), length -> ``max_tokens``,
tool_calls -> ``tool_use``, content_filter -> ``refusal``; ``usage.prompt_tokens`` ->
``input_tokens`` less the cached ones (``cache_read_input_tokens``), ``completion_tokens``
-> ``output_tokens``.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from inferplane.protocol.errors import NotTranslatable

__all__ = [
    "ERROR_TYPES",
    "error_body",
    "error_from_openai",
    "estimate_tokens",
    "messages_to_openai",
    "models_page",
    "openai_to_message",
    "sse_event",
    "stop_reason",
    "usage",
]

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "not_found_error", 405: "invalid_request_error",
               413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 503: "overloaded_error",
               504: "timeout_error", 529: "overloaded_error"}
"""HTTP status -> Anthropic ``error.type`` (docs.claude.com/en/api/errors; 503 as Ollama's own
Anthropic surface maps it; other 4xx invalid_request_error, other 5xx api_error)."""

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                 "function_call": "tool_use", "content_filter": "refusal"}
_ROLES = ("user", "assistant", "system")
_SERVER_TOOL_PREFIXES = ("web_search", "web_fetch", "bash_", "code_execution", "text_editor", "computer_",
                         "memory_", "tool_search")


def error_body(status: int, message: str, request_id: str | None = None) -> bytes:
    """Anthropic's error body: ``{"type": "error", "error": {"type", "message"}}``."""
    body: dict[str, Any] = {"type": "error", "error": {"type": _error_type(status), "message": message}}
    if request_id:
        body["request_id"] = request_id
    return orjson.dumps(body)


def _error_type(status: int) -> str:
    return ERROR_TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")


def error_from_openai(status: int, body: bytes, request_id: str | None = None) -> bytes:
    """An OpenAI error body (the gateway's or a runtime's) in Anthropic's shape, same status."""
    try:
        data = orjson.loads(body)
        err = data.get("error") if isinstance(data, dict) else None
        message = err.get("message") if isinstance(err, dict) else err
    except orjson.JSONDecodeError:
        message = None
    if not isinstance(message, str) or not message:
        message = body.decode("utf-8", "replace")[:500] or f"error {status}"
    return error_body(status, message, request_id)


def sse_event(name: str, data: dict[str, Any]) -> bytes:
    """One Anthropic SSE event: the ``event:`` name matches the data's ``type``."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def models_page(models: list[tuple[str, int, int | None]]) -> dict[str, Any]:
    """``GET /v1/models`` in Anthropic's shape (``ModelInfo`` items in a page) from
    (id, created unix seconds, context length or None) tuples."""
    import datetime as dt

    data = []
    for name, created, context in models:
        info: dict[str, Any] = {"type": "model", "id": name, "display_name": name,
                                "created_at": dt.datetime.fromtimestamp(created, dt.UTC).isoformat()
                                .replace("+00:00", "Z")}
        if context:
            info["max_input_tokens"] = context
        data.append(info)
    return {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}


# -- requests ---------------------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _text_of(blocks: Any, param: str) -> str:
    """The text of a ``system`` value or a tool_result ``content``: a string or text blocks."""
    if isinstance(blocks, str):
        return blocks
    if not isinstance(blocks, list):
        raise NotTranslatable(f"{param}: must be a string or an array of text blocks", param)
    texts = []
    for i, b in enumerate(blocks):
        if not isinstance(b, dict) or b.get("type") != "text" or not isinstance(b.get("text"), str):
            raise NotTranslatable(f"{param}.{i}: only text blocks are supported here", f"{param}.{i}")
        texts.append(b["text"])
    return "\n".join(texts) if param == "system" else "".join(texts)


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    src = block.get("source")
    if isinstance(src, dict) and src.get("type") == "base64":
        media, data = src.get("media_type"), src.get("data")
        if not isinstance(media, str) or not isinstance(data, str):
            raise NotTranslatable(f"{where}.source: base64 images need media_type and data", f"{where}.source")
        return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if isinstance(src, dict) and src.get("type") == "url" and isinstance(src.get("url"), str):
        return {"type": "image_url", "image_url": {"url": src["url"]}}
    raise NotTranslatable(f"{where}.source: expected a 'base64' or 'url' image source", f"{where}.source")


def _tool_result(block: dict[str, Any], where: str) -> dict[str, Any]:
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise NotTranslatable(f"{where}.tool_use_id: Field required", f"{where}.tool_use_id")
    content = block.get("content", "")
    text = _text_of(content, f"{where}.content") if content is not None else ""
    if block.get("is_error") is True:
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}


def _turn(i: int, m: Any) -> list[dict[str, Any]]:
    """One Anthropic message as OpenAI messages (tool results become their own ``tool`` messages)."""
    where = f"messages.{i}"
    if not isinstance(m, dict):
        raise NotTranslatable(f"{where}: must be an object with 'role' and 'content'", where)
    role = m.get("role")
    if role not in _ROLES:
        raise NotTranslatable(f"{where}.role: Input should be 'user' or 'assistant'", f"{where}.role")
    content = m.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise NotTranslatable(f"{where}.content: Field required (a string or an array of blocks)",
                               f"{where}.content")
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for j, b in enumerate(content):
        bw = f"{where}.content.{j}"
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "text":
            if not isinstance(b.get("text"), str):
                raise NotTranslatable(f"{bw}.text: Field required", f"{bw}.text")
            parts.append({"type": "text", "text": b["text"]})
        elif kind == "image":
            parts.append(_image_part(b, bw))
        elif kind == "tool_use" and role == "assistant":
            if not isinstance(b.get("id"), str) or not isinstance(b.get("name"), str):
                raise NotTranslatable(f"{bw}: tool_use blocks need 'id' and 'name'", bw)
            calls.append({"id": b["id"], "type": "function",
                          "function": {"name": b["name"], "arguments": orjson.dumps(b.get("input") or {}).decode()}})
        elif kind == "tool_result" and role == "user":
            results.append(_tool_result(b, bw))
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise NotTranslatable(f"{bw}.type: {kind!r} blocks are not supported in a {role} turn here",
                                   f"{bw}.type")
    out = list(results)
    if parts or calls or not results:
        msg: dict[str, Any] = {"role": role}
        if all(p["type"] == "text" for p in parts):
            msg["content"] = "".join(p["text"] for p in parts) if parts or not calls else None
        else:
            msg["content"] = parts
        if calls:
            msg["tool_calls"] = calls
        out.append(msg)
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise NotTranslatable("tools: must be an array", "tools")
    out = []
    for i, t in enumerate(tools):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise NotTranslatable(f"tools.{i}.name: Field required", f"tools.{i}.name")
        kind = t.get("type")
        if kind not in (None, "custom"):
            if isinstance(kind, str) and kind.startswith(_SERVER_TOOL_PREFIXES):
                raise NotTranslatable(f"tools.{i}: server tool {kind!r} is not available through this gateway; "
                                       "define it as a client tool with an input_schema", f"tools.{i}.type")
            raise NotTranslatable(f"tools.{i}.type: unknown tool type {kind!r}", f"tools.{i}.type")
        schema = t.get("input_schema")
        if not isinstance(schema, dict):
            raise NotTranslatable(f"tools.{i}.input_schema: Field required", f"tools.{i}.input_schema")
        fn: dict[str, Any] = {"name": t["name"], "parameters": schema}
        if isinstance(t.get("description"), str):
            fn["description"] = t["description"]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any, out: dict[str, Any]) -> None:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif kind == "none":
        out["tool_choice"] = "none"
    else:
        raise NotTranslatable("tool_choice: expected {\"type\": \"auto\" | \"any\" | \"tool\" | \"none\"}",
                               "tool_choice")
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False


def messages_to_openai(body: dict[str, Any], *, count_only: bool = False) -> dict[str, Any]:
    """An Anthropic Messages request as an OpenAI chat request. Raises NotTranslatable.

    ``count_only``: a ``count_tokens`` body (no ``max_tokens``; sampling fields ignored).
    """
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise NotTranslatable("model: Field required", "model")
    out: dict[str, Any] = {"model": model}
    if not count_only:
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise NotTranslatable("max_tokens: Field required", "max_tokens")
        if not _is_int(max_tokens) or max_tokens < 1:
            raise NotTranslatable(f"max_tokens: must be an integer >= 1, got {max_tokens!r}", "max_tokens")
        out["max_tokens"] = max_tokens
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise NotTranslatable("messages: Field required (a non-empty array)", "messages")
    chat: list[dict[str, Any]] = []
    system = body.get("system")
    if system is not None:
        text = _text_of(system, "system")
        if text:
            chat.append({"role": "system", "content": text})
    for i, m in enumerate(msgs):
        chat.extend(_turn(i, m))
    out["messages"] = chat
    if body.get("tools") is not None:
        tools = _tools(body["tools"])
        if tools:
            out["tools"] = tools
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"], out)
    if count_only:
        return out
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise NotTranslatable("stop_sequences: must be an array of strings", "stop_sequences")
        if stop:
            out["stop"] = stop
    for key, lo, hi in (("temperature", 0.0, 1.0), ("top_p", 0.0, 1.0)):
        v = body.get(key)
        if v is not None:
            if not _is_num(v) or not lo <= v <= hi:
                raise NotTranslatable(f"{key}: must be a number in [{lo}, {hi}], got {v!r}", key)
            out[key] = v
    top_k = body.get("top_k")
    if top_k is not None:
        if not _is_int(top_k) or top_k < 0:
            raise NotTranslatable(f"top_k: must be an integer >= 0, got {top_k!r}", "top_k")
        out["top_k"] = top_k
    user = (body.get("metadata") or {}).get("user_id") if isinstance(body.get("metadata"), dict) else None
    if isinstance(user, str) and user:
        out["user"] = user
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise NotTranslatable("stream: must be a boolean", "stream")
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def estimate_tokens(body: dict[str, Any]) -> int:
    """A rough input-token count, ~4 characters a token, for runtimes with no tokenizer endpoint.

    Counts the system prompt, each message's role and text (tool blocks as their JSON) and
    each tool's name, description and schema, as Ollama's own Anthropic surface estimates.
    """
    total = len(orjson.dumps(body.get("system"))) if body.get("system") is not None else 0
    for m in body.get("messages") or ():
        if isinstance(m, dict):
            total += len(str(m.get("role", "")))
            c = m.get("content")
            total += len(c) if isinstance(c, str) else len(orjson.dumps(c))
    for t in body.get("tools") or ():
        total += len(orjson.dumps(t))
    return max(1, total // 4)


# -- answers -----------------------------------------------------------------------------------------


def message_id() -> str:
    """A fresh ``msg_...`` id."""
    return "msg_" + os.urandom(12).hex()


def stop_reason(finish: str | None, choice: dict[str, Any],
                stop_sequences: list[str] | None) -> tuple[str, str | None]:
    """(``stop_reason``, ``stop_sequence``) for an OpenAI choice that finished with ``finish``."""
    matched = choice.get("stop_reason")  # vLLM: the stop string it matched (or a token id, or null)
    if finish == "stop" and isinstance(matched, str) and stop_sequences and matched in stop_sequences:
        return "stop_sequence", matched
    return _STOP_REASONS.get(finish or "stop", "end_turn"), None


def usage(u: Any) -> dict[str, int]:
    """OpenAI ``usage`` as Anthropic's (cached prompt tokens are cache reads, not input tokens)."""
    u = u if isinstance(u, dict) else {}
    prompt = int(u.get("prompt_tokens") or 0)
    details = u.get("prompt_tokens_details")
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    return {"input_tokens": max(0, prompt - cached), "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached, "output_tokens": int(u.get("completion_tokens") or 0)}


def _tool_input(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments) if arguments else {}
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise NotTranslatable(f"the model's tool call arguments are not JSON: {str(arguments)[:200]!r}") from exc
    if not isinstance(value, dict):
        raise NotTranslatable("the model's tool call arguments are not a JSON object")
    return value


def openai_to_message(obj: dict[str, Any], model: str, stop_sequences: list[str] | None = None) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` as an Anthropic ``Message``. Raises NotTranslatable."""
    choices = obj.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    msg = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = msg.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for call in msg.get("tool_calls") or ():
        fn = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or "toolu_" + os.urandom(12).hex(),
                        "name": fn.get("name"), "input": _tool_input(fn.get("arguments"))})
    reason, sequence = stop_reason(choice.get("finish_reason"), choice, stop_sequences)
    if msg.get("tool_calls"):
        reason = "tool_use"
    return {"id": message_id(), "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": reason, "stop_sequence": sequence, "usage": usage(obj.get("usage"))}
