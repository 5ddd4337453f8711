"""OpenAI <-> Ollama native API, pure translation, the backend direction: OpenAI in, Ollama out.

Used when a deployment's runtime is Ollama (``runtimes/ollama_dialect.py`` is the glue);
the other direction, Ollama's API served over any runtime, is ``protocol/ollama_surface.py``.
Both rest on the same field correspondences (``api/types.go`` of ollama/ollama):

- sampling: OpenAI ``max_tokens``/``max_completion_tokens`` <-> ``options.num_predict``;
  ``temperature``, ``top_p``, ``seed``, ``stop``, ``frequency_penalty``,
  ``presence_penalty`` keep their names in ``options``; the common extensions ``top_k``,
  ``min_p`` and ``repetition_penalty`` (Ollama: ``repeat_penalty``) too;
- ``response_format`` <-> ``format`` ("json", or a JSON schema object);
- tool calls: OpenAI sends ``function.arguments`` as a JSON string, Ollama as an object;
- images: OpenAI ``image_url`` parts with a ``data:`` URL <-> ``images`` (base64, no URL);
- answers: ``done_reason`` "length" <-> ``finish_reason`` "length", anything else "stop"
  (or "tool_calls" when the model called tools); ``prompt_eval_count``/``eval_count`` <->
  ``usage.prompt_tokens``/``completion_tokens``.

Parameters Ollama cannot honour raise :class:`NotTranslatable` (the gateway answers 400):
``n`` > 1, ``logprobs``/``top_logprobs``, ``logit_bias``, ``suffix``, ``echo``,
``best_of`` > 1, audio, images given by URL rather than ``data:``, a forced tool choice.

Streams: Ollama always reports its counts on the last object; :class:`OllamaToOpenAIStream`
turns them into OpenAI's usage-only chunk when the client asked for ``include_usage`` (and
drops them otherwise), instead of a ``choices: []`` chunk that clients who did not ask trip on.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from inferplane.protocol.errors import NotTranslatable, error_body

__all__ = [
    "OPTION_NAMES",
    "OllamaToOpenAIStream",
    "chat_to_ollama",
    "completion_to_ollama",
    "ollama_chat_to_openai",
    "ollama_generate_to_openai",
]

OPTION_NAMES = {
    "temperature": "temperature", "top_p": "top_p", "seed": "seed",
    "frequency_penalty": "frequency_penalty", "presence_penalty": "presence_penalty",
    "top_k": "top_k", "min_p": "min_p", "repetition_penalty": "repeat_penalty",
}
"""OpenAI request field -> Ollama ``options`` key (``api/types.go`` ``Options``)."""


def _reject(body: dict[str, Any]) -> None:
    if (body.get("n") or 1) > 1:
        raise NotTranslatable("Ollama generates one choice per request; 'n' must be 1", "n")
    if body.get("logprobs") or body.get("top_logprobs"):
        param = "logprobs" if body.get("logprobs") else "top_logprobs"
        raise NotTranslatable("token log-probabilities are not available through this runtime", param)
    if body.get("logit_bias"):
        raise NotTranslatable("Ollama has no logit bias", "logit_bias")
    if body.get("suffix"):
        raise NotTranslatable("Ollama completions take no 'suffix' here", "suffix")
    if body.get("echo"):
        raise NotTranslatable("Ollama cannot echo the prompt", "echo")
    if (body.get("best_of") or 1) > 1:
        raise NotTranslatable("Ollama has no best_of", "best_of")
    if body.get("audio") or "audio" in (body.get("modalities") or ()):
        raise NotTranslatable("Ollama generates text only", "audio")
    if body.get("tool_choice") not in (None, "auto", "none"):
        raise NotTranslatable("Ollama cannot force a tool choice; use 'auto' or 'none'", "tool_choice")


def _options(body: dict[str, Any]) -> dict[str, Any]:
    opts = {ollama: body[openai] for openai, ollama in OPTION_NAMES.items() if body.get(openai) is not None}
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        opts["num_predict"] = limit
    stop = body.get("stop")
    if stop:
        opts["stop"] = [stop] if isinstance(stop, str) else list(stop)
    return opts


def _format(body: dict[str, Any]) -> Any:
    rf = body.get("response_format")
    if not isinstance(rf, dict) or rf.get("type") in (None, "text"):
        return None
    if rf.get("type") == "json_object":
        return "json"
    if rf.get("type") == "json_schema":
        schema = (rf.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            return schema
    raise NotTranslatable(f"response_format {rf.get('type')!r} is not supported by Ollama", "response_format")


def _message(m: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.get("role")}
    content = m.get("content")
    if isinstance(content, list):
        texts, images = [], []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(part.get("text", ""))
            elif kind == "image_url":
                url = (part.get("image_url") or {}).get("url", "")
                if not url.startswith("data:") or ";base64," not in url:
                    raise NotTranslatable("Ollama takes images inline: send a data: URL with base64", "messages")
                images.append(url.split(";base64,", 1)[1])
            else:
                raise NotTranslatable(f"message part type {kind!r} is not supported by Ollama", "messages")
        out["content"] = "".join(texts)
        if images:
            out["images"] = images
    else:
        out["content"] = content or ""
    if m.get("tool_calls"):
        calls = []
        for c in m["tool_calls"]:
            fn = c.get("function") or {}
            args = fn.get("arguments")
            if isinstance(args, str):
                try:
                    args = orjson.loads(args) if args else {}
                except orjson.JSONDecodeError as exc:
                    raise NotTranslatable("tool call arguments must be a JSON object", "messages") from exc
            calls.append({"function": {"name": fn.get("name"), "arguments": args}})
        out["tool_calls"] = calls
    if m.get("role") == "tool" and m.get("name"):
        out["tool_name"] = m["name"]
    return out


def chat_to_ollama(body: dict[str, Any], model_tag: str, keep_alive: str | None = None) -> dict[str, Any]:
    """An OpenAI chat request as an Ollama ``/api/chat`` request. Raises NotTranslatable."""
    out = _common(body, model_tag, keep_alive)
    out["messages"] = [_message(m) for m in body.get("messages") or ()]
    if body.get("tools") and body.get("tool_choice") != "none":
        out["tools"] = body["tools"]
    if body.get("reasoning_effort") is not None:
        out["think"] = body["reasoning_effort"] != "none"
    return out


def completion_to_ollama(body: dict[str, Any], model_tag: str, keep_alive: str | None = None) -> dict[str, Any]:
    """An OpenAI completions request as an Ollama ``/api/generate`` request (raw: no template)."""
    out = _common(body, model_tag, keep_alive)
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise NotTranslatable("Ollama completes one text prompt per request", "prompt")
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise NotTranslatable("Ollama completes text prompts (not token ids)", "prompt")
    out["prompt"] = prompt
    out["raw"] = True  # OpenAI completions take the prompt verbatim, without a chat template
    return out


def _common(body: dict[str, Any], model_tag: str, keep_alive: str | None) -> dict[str, Any]:
    _reject(body)
    out: dict[str, Any] = {"model": model_tag or body.get("model"), "stream": body.get("stream") is True}
    opts = _options(body)
    if opts:
        out["options"] = opts
    fmt = _format(body)
    if fmt is not None:
        out["format"] = fmt
    if keep_alive is not None:
        out["keep_alive"] = keep_alive
    return out


def _finish(obj: dict[str, Any], has_tools: bool) -> str:
    if has_tools:
        return "tool_calls"
    return "length" if obj.get("done_reason") == "length" else "stop"


def _usage(obj: dict[str, Any]) -> dict[str, int]:
    p, c = int(obj.get("prompt_eval_count") or 0), int(obj.get("eval_count") or 0)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _tool_calls(calls: list[dict[str, Any]], start: int = 0) -> list[dict[str, Any]]:
    return [{"index": start + i, "id": c.get("id") or f"call_{os.urandom(8).hex()}", "type": "function",
             "function": {"name": (c.get("function") or {}).get("name"),
                          "arguments": orjson.dumps((c.get("function") or {}).get("arguments") or {}).decode()}}
            for i, c in enumerate(calls)]


def ollama_chat_to_openai(obj: dict[str, Any], model: str) -> dict[str, Any]:
    """An Ollama ``/api/chat`` answer as an OpenAI ``chat.completion``."""
    msg = obj.get("message") or {}
    calls = msg.get("tool_calls") or []
    message: dict[str, Any] = {"role": "assistant", "content": msg.get("content", "")}
    if msg.get("thinking"):
        message["reasoning_content"] = msg["thinking"]
    if calls:
        message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in _tool_calls(calls)]
    return {"id": f"chatcmpl-{os.urandom(12).hex()}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": _finish(obj, bool(calls))}],
            "usage": _usage(obj)}


def ollama_generate_to_openai(obj: dict[str, Any], model: str) -> dict[str, Any]:
    """An Ollama ``/api/generate`` answer as an OpenAI ``text_completion``."""
    return {"id": f"cmpl-{os.urandom(12).hex()}", "object": "text_completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "text": obj.get("response", ""), "logprobs": None,
                                         "finish_reason": _finish(obj, False)}],
            "usage": _usage(obj)}


class OllamaToOpenAIStream:
    """Ollama NDJSON objects (split anywhere across chunks) -> OpenAI SSE chunks. One per stream.

    ``feed`` raises ``orjson.JSONDecodeError`` (a ValueError) for a line that is not JSON.
    """

    __slots__ = ("_buf", "_created", "_id", "_include_usage", "_model", "_object", "_route", "_sent_role",
                 "_tools")

    def __init__(self, route: str, model: str, include_usage: bool = False) -> None:
        self._route = route
        self._include_usage = include_usage
        self._model = model
        self._buf = b""
        self._created = int(time.time())
        self._id = ("chatcmpl-" if route == "chat" else "cmpl-") + os.urandom(12).hex()
        self._object = "chat.completion.chunk" if route == "chat" else "text_completion"
        self._sent_role = False
        self._tools = 0

    def _event(self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        body: dict[str, Any] = {"id": self._id, "object": self._object, "created": self._created,
                                "model": self._model, "choices": choices}
        if usage is not None:
            body["usage"] = usage
        return b"data: " + orjson.dumps(body) + b"\n\n"

    def _translate(self, obj: dict[str, Any]) -> bytes:
        if "error" in obj:
            err = obj["error"]
            return b"data: " + error_body(err if isinstance(err, str) else orjson.dumps(err).decode(),
                                          "api_error") + b"\n\n"
        done = bool(obj.get("done"))
        if self._route != "chat":
            text = obj.get("response", "")
            out = self._event([{"index": 0, "text": text, "logprobs": None, "finish_reason": None}]) if text else b""
            if done:
                out += self._event([{"index": 0, "text": "", "logprobs": None,
                                     "finish_reason": _finish(obj, False)}]) + self._usage_event(obj)
            return out
        msg = obj.get("message") or {}
        delta: dict[str, Any] = {}
        if msg.get("content"):
            delta["content"] = msg["content"]
        if msg.get("thinking"):
            delta["reasoning_content"] = msg["thinking"]
        calls = msg.get("tool_calls") or []
        if calls:
            delta["tool_calls"] = _tool_calls(calls, self._tools)
            self._tools += len(calls)
        if not self._sent_role:
            delta = {"role": "assistant", "content": delta.pop("content", ""), **delta}
            self._sent_role = True
        out = self._event([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]) if delta else b""
        if done:
            out += self._event([{"index": 0, "delta": {}, "logprobs": None,
                                 "finish_reason": _finish(obj, self._tools > 0)}]) + self._usage_event(obj)
        return out

    def _usage_event(self, obj: dict[str, Any]) -> bytes:
        """OpenAI's usage chunk (no choices) after the finish chunk, when the client asked for it."""
        return self._event([], _usage(obj)) if self._include_usage else b""

    def feed(self, chunk: bytes) -> bytes:
        buf = self._buf + chunk if self._buf else chunk
        out = []
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            line = buf[start:end].strip()
            start = end + 1
            if line:
                out.append(self._translate(orjson.loads(line)))
        self._buf = buf[start:]
        return b"".join(out)

    def end(self) -> bytes:
        tail = self._buf.strip()
        self._buf = b""
        out = self._translate(orjson.loads(tail)) if tail else b""
        return out + b"data: [DONE]\n\n"
