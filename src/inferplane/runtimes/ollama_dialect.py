"""OpenAI <-> Ollama native API (``/api/chat``, ``/api/generate``, NDJSON streaming).

Clients only ever see OpenAI. Requests: OpenAI sampling parameters become Ollama
``options`` (``max_tokens`` -> ``num_predict``, ``stop``, ``seed``, ``temperature``,
``top_p``, ``frequency_penalty``, ``presence_penalty``; the common extensions ``top_k``,
``min_p``, ``repetition_penalty`` -> ``repeat_penalty``), ``response_format`` becomes
``format`` ("json" or a JSON schema), tools and tool calls are reshaped (Ollama wants
arguments as objects, OpenAI sends JSON strings), image parts become ``images``.
Parameters Ollama cannot honour raise ``UnsupportedRequest`` (the gateway answers 400):
``n`` > 1, ``logprobs``/``top_logprobs``, ``logit_bias``, ``suffix``, ``echo``,
``best_of`` > 1, audio, images given by URL rather than ``data:``.

Answers: the final NDJSON object carries ``done_reason`` and the token counts
(``prompt_eval_count``, ``eval_count``) that become ``finish_reason`` and ``usage``.
Streams: Ollama always reports its counts on the last object; the translator turns them
into OpenAI's usage-only chunk when the client asked for ``include_usage`` (and drops them
otherwise)
instead of a separate ``choices: []`` chunk that clients who did not ask would trip on.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from inferplane.runtimes.base import Dialect, UnsupportedRequest
from inferplane.runtimes.openai_errors import openai_error

__all__ = ["OllamaDialect", "OllamaStreamTranslator"]

_OPTION_NAMES = {
    "temperature": "temperature", "top_p": "top_p", "seed": "seed",
    "frequency_penalty": "frequency_penalty", "presence_penalty": "presence_penalty",
    "top_k": "top_k", "min_p": "min_p", "repetition_penalty": "repeat_penalty",
}
_IGNORED = {"model", "messages", "prompt", "stream", "stream_options", "user", "metadata", "store", "service_tier",
            "parallel_tool_calls", "tool_choice", "max_tokens", "max_completion_tokens", "stop",
            "response_format", "tools", "n", "logprobs", "top_logprobs", "best_of", "echo", "reasoning_effort"}


def _reject(body: dict[str, Any]) -> None:
    if (body.get("n") or 1) > 1:
        raise UnsupportedRequest("Ollama generates one choice per request; 'n' must be 1", "n")
    if body.get("logprobs") or body.get("top_logprobs"):
        param = "logprobs" if body.get("logprobs") else "top_logprobs"
        raise UnsupportedRequest("token log-probabilities are not available through this runtime", param)
    if body.get("logit_bias"):
        raise UnsupportedRequest("Ollama has no logit bias", "logit_bias")
    if body.get("suffix"):
        raise UnsupportedRequest("Ollama completions take no 'suffix' here", "suffix")
    if body.get("echo"):
        raise UnsupportedRequest("Ollama cannot echo the prompt", "echo")
    if (body.get("best_of") or 1) > 1:
        raise UnsupportedRequest("Ollama has no best_of", "best_of")
    if body.get("audio") or "audio" in (body.get("modalities") or ()):
        raise UnsupportedRequest("Ollama generates text only", "audio")
    if body.get("tool_choice") not in (None, "auto", "none"):
        raise UnsupportedRequest("Ollama cannot force a tool choice; use 'auto' or 'none'", "tool_choice")


def _options(body: dict[str, Any]) -> dict[str, Any]:
    opts = {ollama: body[openai] for openai, ollama in _OPTION_NAMES.items() if body.get(openai) is not None}
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
    raise UnsupportedRequest(f"response_format {rf.get('type')!r} is not supported by Ollama", "response_format")


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
                    raise UnsupportedRequest("Ollama takes images inline: send a data: URL with base64", "messages")
                images.append(url.split(";base64,", 1)[1])
            else:
                raise UnsupportedRequest(f"message part type {kind!r} is not supported by Ollama", "messages")
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
                    raise UnsupportedRequest("tool call arguments must be a JSON object", "messages") from exc
            calls.append({"function": {"name": fn.get("name"), "arguments": args}})
        out["tool_calls"] = calls
    if m.get("role") == "tool" and m.get("name"):
        out["tool_name"] = m["name"]
    return out


def _finish(obj: dict[str, Any], has_tools: bool) -> str:
    if has_tools:
        return "tool_calls"
    return "length" if obj.get("done_reason") == "length" else "stop"


def _usage(obj: dict[str, Any]) -> dict[str, int]:
    p, c = int(obj.get("prompt_eval_count") or 0), int(obj.get("eval_count") or 0)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _tool_calls(calls: list[dict[str, Any]], start: int = 0) -> list[dict[str, Any]]:
    return [{"index": start + i, "id": f"call_{os.urandom(8).hex()}", "type": "function",
             "function": {"name": (c.get("function") or {}).get("name"),
                          "arguments": orjson.dumps((c.get("function") or {}).get("arguments") or {}).decode()}}
            for i, c in enumerate(calls)]


class OllamaDialect(Dialect):
    """Talks to one Ollama model (``model_tag``) whatever name clients use for it."""

    name = "ollama"
    passthrough = False
    chat_path = "/api/chat"
    completions_path = "/api/generate"
    models_path = "/api/tags"
    api_key_header = None  # Ollama's server checks no key (ollama/ollama@fb30760 server/routes.go): none to send

    def __init__(self, model_tag: str = "", *, keep_alive: str | None = None) -> None:
        self.model_tag = model_tag
        self.keep_alive = keep_alive

    def request(self, route: str, body: dict[str, Any], raw: bytes) -> tuple[str, bytes]:
        _reject(body)
        out: dict[str, Any] = {"model": self.model_tag or body.get("model"), "stream": body.get("stream") is True}
        opts = _options(body)
        if opts:
            out["options"] = opts
        fmt = _format(body)
        if fmt is not None:
            out["format"] = fmt
        if self.keep_alive is not None:
            out["keep_alive"] = self.keep_alive
        if route == "chat":
            out["messages"] = [_message(m) for m in body.get("messages") or ()]
            if body.get("tools") and body.get("tool_choice") != "none":
                out["tools"] = body["tools"]
            if body.get("reasoning_effort") is not None:
                out["think"] = body["reasoning_effort"] != "none"
            return self.chat_path, orjson.dumps(out)
        prompt = body.get("prompt")
        if isinstance(prompt, list):
            if len(prompt) != 1 or not isinstance(prompt[0], str):
                raise UnsupportedRequest("Ollama completes one text prompt per request", "prompt")
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise UnsupportedRequest("Ollama completes text prompts (not token ids)", "prompt")
        out["prompt"] = prompt
        out["raw"] = True  # OpenAI completions take the prompt verbatim, without a chat template
        return self.completions_path, orjson.dumps(out)

    def response(self, route: str, model: str, status: int, body: bytes) -> tuple[int, bytes]:
        if status >= 400:
            return status, openai_error(status, body)
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            return 502, openai_error(502, b"Ollama sent an answer that is not JSON: " + body[:200])
        created = int(time.time())
        if route == "chat":
            msg = obj.get("message") or {}
            calls = msg.get("tool_calls") or []
            message: dict[str, Any] = {"role": "assistant", "content": msg.get("content", "")}
            if msg.get("thinking"):
                message["reasoning_content"] = msg["thinking"]
            if calls:
                message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in _tool_calls(calls)]
            out = {"id": f"chatcmpl-{os.urandom(12).hex()}", "object": "chat.completion", "created": created,
                   "model": model, "system_fingerprint": "fp_ollama",
                   "choices": [{"index": 0, "message": message, "logprobs": None,
                                "finish_reason": _finish(obj, bool(calls))}],
                   "usage": _usage(obj)}
        else:
            out = {"id": f"cmpl-{os.urandom(12).hex()}", "object": "text_completion", "created": created,
                   "model": model, "choices": [{"index": 0, "text": obj.get("response", ""), "logprobs": None,
                                                "finish_reason": _finish(obj, False)}],
                   "usage": _usage(obj)}
        return status, orjson.dumps(out)

    def stream(self, route: str, model: str, include_usage: bool = False) -> OllamaStreamTranslator:
        return OllamaStreamTranslator(route, model, include_usage)


class OllamaStreamTranslator:
    """NDJSON objects (split anywhere across chunks) -> OpenAI SSE chunks. One per stream."""

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
            err = orjson.loads(openai_error(500, orjson.dumps(obj)))
            return b"data: " + orjson.dumps(err) + b"\n\n"
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
