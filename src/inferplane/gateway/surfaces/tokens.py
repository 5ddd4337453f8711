"""Counting a chat request's input tokens with the runtime's own tokenizer, where it has one.

For ``count_tokens`` (Anthropic) the count should be what the runtime will charge the request,
chat template included. Runtimes that expose their tokenizer over HTTP:

- llama.cpp's server (``embedded``, ``llamacpp``): ``POST /apply-template`` renders the
  messages with the model's chat template, ``POST /tokenize`` counts the rendered prompt;
- vLLM: ``POST /tokenize`` takes the chat messages (and tools) and answers ``count``.

Any other runtime, or one whose replica does not answer within ``timeout_s``, gets None and
the caller falls back to an estimate. Never raises for upstream trouble.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from inferplane.gateway.upstream import UpstreamError, UpstreamPool
from inferplane.routing.registry import Endpoint

__all__ = ["count_chat_tokens"]

_LLAMA_CPP = frozenset({"embedded", "llamacpp"})


async def _post(pool: UpstreamPool, url: str, path: str, body: dict[str, Any], timeout_s: float) -> Any:
    resp = await pool.post(url, path, orjson.dumps(body))
    try:
        status = await resp.headers(timeout_s)
        async with asyncio.timeout(timeout_s):
            data = await resp.read()
    except BaseException:
        resp.close()
        raise
    resp.release()
    if status != 200:
        raise UpstreamError(f"{path} answered {status}")
    return orjson.loads(data)


async def count_chat_tokens(pool: UpstreamPool, ep: Endpoint, chat: dict[str, Any], *,
                            timeout_s: float = 10.0) -> int | None:
    """Input tokens of the OpenAI chat request ``chat`` on ``ep``'s runtime, or None if it cannot say."""
    try:
        if ep.runtime in _LLAMA_CPP:
            rendered = await _post(pool, ep.url, "/apply-template", {"messages": chat["messages"]}, timeout_s)
            tokens = await _post(pool, ep.url, "/tokenize", {"content": rendered["prompt"], "add_special": True},
                                 timeout_s)
            n = len(tokens["tokens"])
            if chat.get("tools"):  # llama.cpp renders tools only for a completion; count their schema roughly
                n += len(orjson.dumps(chat["tools"])) // 4
            return n
        if ep.runtime == "vllm":
            body = {"model": ep.upstream_model or ep.deployment, "messages": chat["messages"]}
            if chat.get("tools"):
                body["tools"] = chat["tools"]
            return int((await _post(pool, ep.url, "/tokenize", body, timeout_s))["count"])
    except (UpstreamError, TimeoutError, KeyError, TypeError, ValueError):
        return None
    return None
