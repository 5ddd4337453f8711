"""Ollama's API over any runtime: ``/api/chat``, ``/api/generate``, ``/api/embed``, ``/api/tags``,
``/api/show``, ``/api/ps``, ``/api/version``.

An app written for Ollama moves to any fleet by changing the host. Chat, generate and embed are
translated (``protocol/ollama_surface.py``) into canonical OpenAI requests, validated as the
OpenAI surface validates them, and served by the one request pipeline; answers come back as
Ollama JSON, streams as NDJSON, errors as ``{"error": "..."}`` with the same status - for every
path under ``/api/``, unknown ones included. The model list, ``show`` and ``ps`` describe the
served deployments.

Names: Ollama calls a model ``name:tag``; a deployment ``smollm2`` is listed as
``smollm2:latest`` and both spellings reach it (Ollama treats a missing tag as ``latest``).
Embeddings go to deployments that serve them (the deployment field ``embeddings``); a chat
deployment answers 400 naming that field. A chat with no messages or a generate with no prompt
answers at once with ``done_reason: "load"``, as Ollama does (its way to load a model).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson

from inferplane.gateway.http_messages import Request, Responder
from inferplane.gateway.surfaces.base import (
    InferenceRequest,
    Lookup,
    Rejection,
    Served,
    Surface,
    SurfaceRoute,
    TranslatingEncoder,
)
from inferplane.gateway.surfaces.openai import OpenAISurface
from inferplane.protocol.errors import NotTranslatable
from inferplane.protocol.ollama_surface import (
    OpenAIToOllamaStream,
    chat_from_ollama,
    created_at,
    embed_from_ollama,
    error_body,
    error_from_openai,
    generate_from_ollama,
    openai_to_chat,
    openai_to_embed,
    openai_to_generate,
)
from inferplane.protocol.routes import Route, SurfaceName

if TYPE_CHECKING:
    from inferplane.gateway.app import Gateway

__all__ = ["OLLAMA_API_VERSION", "OllamaEncoder", "OllamaSurface"]

OLLAMA_API_VERSION = "0.33.0-rc2"
"""The Ollama release whose API this surface follows (ollama/ollama at fb30760, tag v0.33.0-rc2)."""

_JSON = ("Content-Type", "application/json; charset=utf-8")
_FAR_FUTURE_S = 100 * 365 * 86400  # replicas do not unload on a timer: "expires" far ahead
_ANSWERED = "ollama_answered"
"""Rejection code of a request the surface answers itself (200, ``done_reason: "load"``)."""


class OllamaEncoder(TranslatingEncoder):
    """One request's answer: OpenAI JSON / SSE -> Ollama JSON / NDJSON."""

    stream_content_type = "application/x-ndjson"
    answer_as = "in Ollama's API"
    __slots__ = ("kind", "model", "t0")

    def __init__(self, kind: str, model: str, t0_ns: int | None = None) -> None:
        """``t0_ns``: when the request came in (``time.perf_counter_ns()``; default: now), where
        Ollama's durations start."""
        self.kind = kind  # "chat" | "generate" | "embed"
        self.model = model
        self.t0 = time.perf_counter_ns() if t0_ns is None else t0_ns
        self.stream = OpenAIToOllamaStream(kind, model, self.t0)

    def _translate(self, obj: Any) -> Any:
        total = time.perf_counter_ns() - self.t0
        if self.kind == "chat":
            return openai_to_chat(obj, self.model, total)
        if self.kind == "embed":
            return openai_to_embed(obj, self.model, total)
        return openai_to_generate(obj, self.model, total)


def _lookup(served: Lookup, name: Any) -> Served | None:
    if not isinstance(name, str) or not name:
        return None
    s = served(name)
    if s is None and name.endswith(":latest"):
        s = served(name[: -len(":latest")])
    return s


class OllamaSurface(Surface):
    name = SurfaceName.OLLAMA
    key_headers = ("authorization",)
    prefixes = ("/api/",)
    """Paths whose errors (404, 405, 401) are Ollama's even off its routes."""

    def __init__(self, embeddings_served: bool = False) -> None:
        self._openai = OpenAISurface()
        self.embeddings_served = embeddings_served
        """Whether the gateway serves ``Route.EMBEDDINGS`` (``/v1/embeddings``)."""

    def routes(self) -> Iterable[SurfaceRoute]:
        return (SurfaceRoute("/api/chat", "POST", Route.CHAT), SurfaceRoute("/api/generate", "POST", Route.CHAT),
                SurfaceRoute("/api/embed", "POST", Route.EMBEDDINGS))

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        try:
            body = orjson.loads(request.body) if request.body else None
        except orjson.JSONDecodeError as exc:
            raise Rejection(400, f"invalid character in request body: {exc}") from exc
        if not isinstance(body, dict):
            raise Rejection(400, "missing request body" if body is None else "request body must be an object")
        return body

    @staticmethod
    def _deployment(body: dict[str, Any], served: Lookup) -> Served:
        s = _lookup(served, body.get("model"))
        if s is None:
            name = body.get("model")
            raise Rejection(404 if name else 400, f"model '{name}' not found" if name else "model is required")
        return s

    def parse(self, route: Route, request: Request, served: Lookup) -> InferenceRequest:
        body = self._body(request)
        s = self._deployment(body, served)
        model = body["model"]
        try:
            if request.path == "/api/chat":
                kind, openai = "chat", chat_from_ollama(body)
                if not openai["messages"]:
                    raise Rejection(200, "loaded", code=_ANSWERED, body=orjson.dumps({
                        "model": model, "created_at": created_at(), "message": {"role": "assistant", "content": ""},
                        "done_reason": "load", "done": True}))
            elif request.path == "/api/generate":
                name, openai = generate_from_ollama(body)
                kind, route = "generate", Route(name)
                if not body.get("prompt") and not body.get("images"):
                    raise Rejection(200, "loaded", code=_ANSWERED, body=orjson.dumps({
                        "model": model, "created_at": created_at(), "response": "", "done": True,
                        "done_reason": "load"}))
            else:
                if not getattr(s.config, "embeddings", False) or not self.embeddings_served:
                    raise Rejection(400, f"the model '{model}' does not serve embeddings: embeddings come from a "
                                         "deployment with 'embeddings: true' in its config (its own deployment, "
                                         "e.g. smollm2-embed)")
                kind, openai = "embed", embed_from_ollama(body)
        except NotTranslatable as exc:
            raise Rejection(400, str(exc), param=exc.param) from exc
        openai["model"] = s.config.name
        req = self._openai.check(route, openai, orjson.dumps(openai), request.headers, served)  # the OpenAI checks
        # still being made here (a dataclasses.replace costs ~5 us); the encoder is made once the
        # answer is there, its durations from now
        req.extra = {"kind": kind, "model": model, "t0_ns": time.perf_counter_ns()}
        return req

    def encoder(self, req: InferenceRequest) -> OllamaEncoder:
        extra = req.extra
        return OllamaEncoder(extra["kind"], extra["model"], extra["t0_ns"])

    def error(self, rejection: Rejection) -> tuple[int, bytes, list[tuple[str, str]]]:
        hs = [*rejection.headers, _JSON]
        if rejection.code == _ANSWERED and rejection.body is not None:
            return 200, rejection.body, hs
        if rejection.status in (429, 503) and not any(k.lower() == "retry-after" for k, _ in hs):
            hs.append(("Retry-After", "1"))
        body = error_from_openai(rejection.body) if rejection.body is not None else error_body(rejection.message)
        return rejection.status, body, hs

    def stream_error(self, message: str, code: str) -> bytes:
        return orjson.dumps({"error": message}) + b"\n"

    # -- the model list (routes outside the pipeline) ------------------------------------

    @staticmethod
    def _entry(s: Served) -> dict[str, Any]:
        c = s.config
        name = c.name if ":" in c.name else f"{c.name}:latest"
        path = os.path.expanduser(c.model)
        size = os.path.getsize(path) if os.path.isfile(path) else 0
        fmt = "gguf" if c.model.endswith(".gguf") or c.runtime in ("embedded", "llamacpp", "ollama") else ""
        return {"name": name, "model": name, "modified_at": created_at(s.created), "size": size,
                "digest": hashlib.sha256(f"{c.name}\0{c.runtime}\0{c.model}".encode()).hexdigest(),
                "details": {"parent_model": "", "format": fmt, "family": "", "families": None,
                            "parameter_size": "", "quantization_level": c.quantization or ""}}

    async def tags(self, gateway: Gateway, request: Request, out: Responder) -> None:
        served = gateway.visible(request, self.key_headers)
        out.send(200, orjson.dumps({"models": [self._entry(s) for s in served.values()]}), [_JSON])

    async def ps(self, gateway: Gateway, request: Request, out: Responder) -> None:
        models = []
        for s in gateway.visible(request, self.key_headers).values():
            if gateway.registry.ready(s.config.name):
                e = self._entry(s)
                models.append({k: e[k] for k in ("name", "model", "size", "digest", "details")} |
                              {"expires_at": created_at(time.time() + _FAR_FUTURE_S), "size_vram": 0,
                               "context_length": s.config.context_length_tokens or 0})
        out.send(200, orjson.dumps({"models": models}), [_JSON])

    async def show(self, gateway: Gateway, request: Request, out: Responder) -> None:
        try:
            body = self._body(request)
            if not body.get("model") and body.get("name"):  # the deprecated spelling
                body["model"] = body["name"]
            s = self._deployment(body, gateway.visible(request, self.key_headers).get)
        except Rejection as rej:
            out.send(*self.error(rej))
            return
        c = s.config
        caps = ["embedding"] if getattr(c, "embeddings", False) else ["completion"]
        if s.capabilities.tools and caps == ["completion"]:
            caps.append("tools")
        if s.parts is not None and "image_url" in s.parts:
            caps.append("vision")
        info: dict[str, Any] = {"general.architecture": "", "inferplane.runtime": c.runtime}
        if c.context_length_tokens:
            info["general.context_length"] = c.context_length_tokens
        out.send(200, orjson.dumps({
            "modelfile": f"# served by inferplane on the {c.runtime} runtime\nFROM {c.model}\n",
            "parameters": "", "template": "", "details": self._entry(s)["details"], "model_info": info,
            "capabilities": caps, "modified_at": created_at(s.created)}), [_JSON])

    async def version(self, _gateway: Gateway, _request: Request, out: Responder) -> None:
        out.send(200, orjson.dumps({"version": OLLAMA_API_VERSION}), [_JSON])
