"""The Anthropic Messages API over any runtime: ``POST /v1/messages`` and ``/v1/messages/count_tokens``.

A Messages request is translated (``protocol/anthropic.py``) into the canonical OpenAI chat
request, validated as the OpenAI surface validates it, and served by the one request pipeline;
the answer, the stream (``protocol/anthropic_stream.py``) and every error - the gateway's own
400/401/404/429/503 included - go back in Anthropic's shape. The key may come as ``x-api-key``
(Anthropic's header) or ``Authorization: Bearer`` (what anthropic SDK 2.x sends);
``anthropic-version`` is accepted whatever its value. Answers carry ``request-id`` (the SDK's
``_request_id``) beside ``x-request-id``.

``count_tokens`` counts with the runtime's tokenizer when it has one (``surfaces/tokens.py``)
and otherwise estimates (~4 characters a token); the ``x-inferplane-token-count`` header says
which (``runtime`` / ``estimate``). ``GET /v1/models`` from a client that sends
``anthropic-version`` gets Anthropic's model page (see ``Gateway.models``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson

from inferplane.gateway.http_messages import Request, Responder
from inferplane.gateway.surfaces.base import (
    InferenceRequest,
    Lookup,
    Rejection,
    Surface,
    SurfaceRoute,
    TranslatingEncoder,
)
from inferplane.gateway.surfaces.openai import OpenAISurface
from inferplane.gateway.surfaces.tokens import count_chat_tokens
from inferplane.protocol.anthropic import (
    error_body,
    error_from_openai,
    estimate_tokens,
    messages_to_openai,
    models_page,
    openai_to_message,
)
from inferplane.protocol.anthropic_stream import OpenAIToAnthropicStream
from inferplane.protocol.errors import NotTranslatable
from inferplane.protocol.routes import Route, SurfaceName

if TYPE_CHECKING:
    from inferplane.gateway.app import Gateway

__all__ = ["AnthropicEncoder", "AnthropicSurface"]

_JSON = ("Content-Type", "application/json")


class AnthropicEncoder(TranslatingEncoder):
    """One Messages request's answer: OpenAI chat completion / chunks -> Message / events."""

    stream_content_type = "text/event-stream"
    answer_as = "as a Message"
    __slots__ = ("model", "stop")

    def __init__(self, model: str, stop: list[str] | None, estimate: int) -> None:
        self.model = model
        self.stop = stop
        self.stream = OpenAIToAnthropicStream(model, stop, estimate)

    def _translate(self, obj: Any) -> Any:
        return openai_to_message(obj, self.model, self.stop)


def _status_error(rej: Rejection) -> bytes:
    if rej.body is not None:
        return error_from_openai(rej.status, rej.body)
    return error_body(rej.status, rej.message)


class AnthropicSurface(Surface):
    name = SurfaceName.ANTHROPIC
    key_headers = ("x-api-key", "authorization")
    prefixes = ("/v1/messages",)
    """Paths whose errors (404, 405, 401) are Anthropic's even off its routes."""
    request_id_header = "request-id"
    """Sent beside ``x-request-id``: the SDK reads it into ``_request_id``."""

    def __init__(self) -> None:
        self._openai = OpenAISurface()

    def routes(self) -> Iterable[SurfaceRoute]:
        return (SurfaceRoute("/v1/messages", "POST", Route.CHAT),)

    @staticmethod
    def _body(request: Request) -> dict:
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError as exc:
            raise Rejection(400, f"the request body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise Rejection(400, "the request body must be a JSON object")
        return body

    def parse(self, route: Route, request: Request, served: Lookup) -> InferenceRequest:
        body = self._body(request)
        try:
            chat = messages_to_openai(body)
        except NotTranslatable as exc:
            raise Rejection(400, str(exc), param=exc.param) from exc
        req = self._openai.check(Route.CHAT, chat, orjson.dumps(chat), request.headers, served)  # the OpenAI checks
        # still being made here (a dataclasses.replace costs ~5 us)
        req.extra = {"model": chat["model"], "stop": chat.get("stop"), "body": body}
        return req

    def encoder(self, req: InferenceRequest) -> AnthropicEncoder:
        """The answer's encoder; the input estimate its ``message_start`` carries is made here,
        once the answer is there, not on the request's way up."""
        extra = req.extra
        return AnthropicEncoder(extra["model"], extra["stop"], estimate_tokens(extra["body"]))

    def error(self, rejection: Rejection) -> tuple[int, bytes, list[tuple[str, str]]]:
        hs = [*rejection.headers, _JSON]
        if rejection.status in (429, 503) and not any(k.lower() == "retry-after" for k, _ in hs):
            hs.append(("Retry-After", "1"))
        return rejection.status, _status_error(rejection), hs

    def stream_error(self, message: str, code: str) -> bytes:
        return OpenAIToAnthropicStream("").error(message)

    # -- routes outside the pipeline (no generation) -----------------------------------

    async def count_tokens(self, gateway: Gateway, request: Request, out: Responder) -> None:
        try:
            body = self._body(request)
            try:
                chat = messages_to_openai(body, count_only=True)
            except NotTranslatable as exc:
                raise Rejection(400, str(exc), param=exc.param) from exc
            served = gateway.visible(request, self.key_headers).get(chat["model"])
            if served is None:  # not served, or not for this key: alike
                raise Rejection(404, f"model: {chat['model']} (GET /v1/models lists the served models)")
        except Rejection as rej:
            out.send(*self.error(rej))
            return
        ready = gateway.registry.ready(served.config.name)
        n = await count_chat_tokens(gateway.pool, min(ready, key=lambda e: e.in_flight), chat) if ready else None
        how = "runtime" if n is not None else "estimate"
        out.send(200, orjson.dumps({"input_tokens": n if n is not None else estimate_tokens(body)}),
                 [_JSON, ("x-inferplane-token-count", how)])

    @staticmethod
    async def models(gateway: Gateway, out: Responder, scope: frozenset[str] | None = None) -> None:
        """The served models in Anthropic's shape; ``scope``: only these (what the key may call)."""
        page = models_page([(s.config.name, s.created, s.config.context_length_tokens)
                            for s in gateway.served.values() if scope is None or s.config.name in scope])
        out.send(200, orjson.dumps(page), [_JSON])
