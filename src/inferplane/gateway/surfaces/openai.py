"""The OpenAI surface: ``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``, ``/v1/responses``.

Embeddings and Responses: openai_routes.py (a Responses request to a runtime without the
route is translated onto chat, and only then is ``encoder`` not None).

The canonical request is OpenAI's own, so parsing is validation only: the client's body
bytes are the canonical ``body`` (forwarded untouched unless an attempt must change the
model name or ask for usage), and answers pass back untouched (``encoder`` is None).
Errors are OpenAI's envelope ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from inferplane.gateway.http_messages import Request
from inferplane.gateway.surfaces.base import (
    Encoder,
    InferenceRequest,
    Lookup,
    Rejection,
    Surface,
    SurfaceRoute,
)
from inferplane.gateway.surfaces.openai_routes import (
    check_deployment_kind,
    check_tool_support,
    parse_embeddings,
    parse_responses,
    responses_encoder,
)
from inferplane.protocol.errors import error_body, sse_error_event
from inferplane.protocol.openai import check_chat, check_completion
from inferplane.protocol.routes import Route, SurfaceName

__all__ = ["OpenAISurface", "openai_error"]

_CHAT, _EMBEDDINGS, _RESPONSES = Route.CHAT, Route.EMBEDDINGS, Route.RESPONSES
"""Module names for the routes ``parse`` tells apart on every request: on Python 3.11 each
``Route.X`` is a lookup through ``EnumType.__getattr__`` (about 0.1-0.3 us), a global is not."""

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


def openai_error(rejection: Rejection) -> tuple[int, bytes, list[tuple[str, str]]]:
    """OpenAI's rendering of a rejection. A 429 or 503 always carries ``Retry-After`` (1 s
    unless the rejection says otherwise), so clients that honour it back off instead of
    retrying in a tight loop."""
    status = rejection.status
    body = rejection.body
    if body is None:
        body = error_body(rejection.message, rejection.type or _TYPES.get(status, "server_error"),
                          param=rejection.param, code=rejection.code)
    hs = [*rejection.headers, ("Content-Type", "application/json")]
    if status in (429, 503) and not any(k.lower() == "retry-after" for k, _ in hs):
        hs.append(("Retry-After", "1"))
    return status, body, hs


class OpenAISurface(Surface):
    name = SurfaceName.OPENAI
    key_headers = ("authorization",)

    def routes(self) -> Iterable[SurfaceRoute]:
        return (SurfaceRoute("/v1/chat/completions", "POST", Route.CHAT),
                SurfaceRoute("/v1/completions", "POST", Route.COMPLETIONS),
                SurfaceRoute("/v1/embeddings", "POST", Route.EMBEDDINGS),
                SurfaceRoute("/v1/responses", "POST", Route.RESPONSES))

    def parse(self, route: Route, request: Request, served: Lookup) -> InferenceRequest:
        body = request.body
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise Rejection(400, f"request body is not valid JSON: {exc}", code="invalid_json") from exc
        if not isinstance(data, dict):
            raise Rejection(400, "request body must be a JSON object", code="invalid_json")
        return self.check(route, data, body, request.headers, served)

    def check(self, route: Route, data: dict[str, Any], body: bytes, headers: dict[str, str],
              served: Lookup) -> InferenceRequest:
        """``parse`` after the JSON decode: the canonical request for ``data``, the OpenAI request
        ``body`` holds. The Anthropic and Ollama surfaces check the OpenAI request they translated
        with it, as it is (its bytes are not decoded again). Raises ``Rejection``."""
        model = data.get("model")
        s = served(model) if isinstance(model, str) else None
        if route is _EMBEDDINGS:
            return parse_embeddings(data, body, s)
        if route is _RESPONSES:
            key = headers.get("x-session-id") or data.get("user")
            return parse_responses(data, body, s, key if isinstance(key, str) else None)
        chat = route is _CHAT
        if chat:  # one walk over the messages, their content parts included
            problem = (check_chat(data, max_n=128) if s is None else
                       check_chat(data, max_n=s.capabilities.max_choices, parts=s.parts, runtime=s.config.runtime))
        else:
            problem = check_completion(data, max_n=128 if s is None else s.capabilities.max_choices)
        if problem is not None:
            raise Rejection(400, problem.message, param=problem.param, code=problem.code)
        if s is None:
            raise Rejection(404, f"the model {model!r} does not exist; GET /v1/models lists the served models",
                            param="model", code="model_not_found")
        # chat and completions need a chat deployment (check_deployment_kind, asked only when it may refuse)
        problem = check_deployment_kind(route, s.config) if s.config.embeddings else None
        if problem is None and chat and ("tools" in data or "tool_choice" in data):
            problem = check_tool_support(data, s)
        if problem is not None:
            raise Rejection(400, problem.message, param=problem.param, code=problem.code)
        key = headers.get("x-session-id") or data.get("user")
        opts = data.get("stream_options")
        limit = data.get("max_completion_tokens") or data.get("max_tokens")
        return InferenceRequest(route, s, data, body, data.get("stream") is True,
                                opts.get("include_usage") is True if isinstance(opts, dict) else False,
                                key if isinstance(key, str) else None,
                                limit if type(limit) is int else None)

    def encoder(self, req: InferenceRequest) -> Encoder | None:
        return None if req.extra is None else responses_encoder(req)

    def error(self, rejection: Rejection) -> tuple[int, bytes, list[tuple[str, str]]]:
        return openai_error(rejection)

    def stream_error(self, message: str, code: str) -> bytes:
        return sse_error_event(message, code=code)
