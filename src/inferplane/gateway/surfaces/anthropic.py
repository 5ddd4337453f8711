"""The Anthropic Messages API over any runtime: ``POST /v1/messages`` and ``/v1/messages/count_tokens``.

A Messages request is translated (``protocol/anthropic.py``) into an OpenAI chat request and
served by the gateway's one request path; the answer, the stream and every error - the
gateway's own 400/401/404/429/503 included - go back in Anthropic's shape. The key may come as
``x-api-key`` (Anthropic's header) or ``Authorization: Bearer`` (what anthropic SDK 2.x sends);
``anthropic-version`` is accepted whatever its value. Each answer carries ``request-id``
(what the SDK reads into ``_request_id``) next to the gateway's ``x-request-id``.

``count_tokens`` counts with the runtime's tokenizer when it has one (``surfaces/tokens.py``)
and otherwise estimates (~4 characters a token); the ``x-inferplane-token-count`` header says
which (``runtime`` / ``estimate``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from inferplane.gateway.http1 import Request, Responder
from inferplane.gateway.surfaces.tokens import count_chat_tokens
from inferplane.gateway.surfaces.translating import TranslatingResponder
from inferplane.protocol.anthropic import (
    error_from_openai,
    estimate_tokens,
    messages_to_openai,
    models_page,
    openai_to_message,
)
from inferplane.protocol.anthropic_stream import OpenAIToAnthropicStream
from inferplane.protocol.errors import TranslationError, error_body

if TYPE_CHECKING:
    from inferplane.gateway.app import Gateway

__all__ = ["AnthropicSurface"]

Handler = Callable[[Request, Responder], Awaitable[None]]


class _Encoder:
    """One Messages request's answer: OpenAI chat completion / chunks -> Message / events."""

    stream_content_type = "text/event-stream"
    __slots__ = ("estimate", "model", "stop")

    def __init__(self, model: str, stop: list[str] | None, estimate: int) -> None:
        self.model = model
        self.stop = stop
        self.estimate = estimate

    def body(self, body: bytes) -> bytes:
        return orjson.dumps(openai_to_message(orjson.loads(body), self.model, self.stop))

    def stream(self) -> OpenAIToAnthropicStream:
        return OpenAIToAnthropicStream(self.model, self.stop, self.estimate)


def _with_request_id(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    rid = next((v for k, v in headers if k.lower() == "x-request-id"), None)
    return [*headers, ("request-id", rid)] if rid else headers


def _bad(out: Responder, message: str, headers: list[tuple[str, str]] | None = None) -> None:
    out.send(400, error_body(message, "invalid_request_error"), headers or [])


class AnthropicSurface:
    """Serves the Messages API through ``gateway``'s request path (built once, by the Gateway)."""

    prefix = "/v1/messages"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def routes(self) -> dict[str, dict[str, Handler]]:
        return {"/v1/messages": {"POST": self.messages},
                "/v1/messages/count_tokens": {"POST": self.count_tokens}}

    def wrap(self, out: Responder) -> TranslatingResponder:
        """``out`` answering in Anthropic's shape (errors at once, answers once ``encoder`` is set)."""
        return TranslatingResponder(out, error_from_openai, _with_request_id)

    @staticmethod
    def _parse(request: Request, out: Responder) -> dict[str, Any] | None:
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError as exc:
            _bad(out, f"the request body is not valid JSON: {exc}")
            return None
        if not isinstance(body, dict):
            _bad(out, "the request body must be a JSON object")
            return None
        return body

    async def messages(self, request: Request, out: Responder) -> None:
        body = self._parse(request, out)
        if body is None:
            return
        try:
            chat = messages_to_openai(body)
        except TranslationError as exc:
            _bad(out, str(exc))
            return
        if isinstance(out, TranslatingResponder):
            out.encoder = _Encoder(chat["model"], chat.get("stop"), estimate_tokens(body))
        inner = Request(request.method, "/v1/chat/completions", request.query, request.headers, orjson.dumps(chat),
                        request.keep_alive, request.http_version)
        await self.gateway.serve_canonical(inner, out, "chat")

    async def models(self, _request: Request, out: Responder) -> None:
        """``GET /v1/models`` for an Anthropic client (one that sends ``anthropic-version``)."""
        page = models_page([(s.config.name, s.created, s.config.context_length_tokens)
                            for s in self.gateway.served.values()])
        out.send(200, orjson.dumps(page), [("Content-Type", "application/json")])

    async def count_tokens(self, request: Request, out: Responder) -> None:
        body = self._parse(request, out)
        if body is None:
            return
        try:
            chat = messages_to_openai(body, count_only=True)
        except TranslationError as exc:
            _bad(out, str(exc))
            return
        g = self.gateway
        served = g.served.get(chat["model"])
        if served is None:
            out.send(404, error_body(f"model: {chat['model']} (GET /v1/models lists the served models)",
                                     "not_found_error"), [])
            return
        ready = g.registry.ready(served.config.name)
        n = None
        if ready:
            ep = min(ready, key=lambda e: e.in_flight)
            n = await count_chat_tokens(g.pool, ep, chat)
        how = "runtime" if n is not None else "estimate"
        if n is None:
            n = estimate_tokens(body)
        assert isinstance(out, TranslatingResponder)  # the Gateway wraps every request on this surface
        out.send_native(200, orjson.dumps({"input_tokens": n}), [("x-inferplane-token-count", how)])
