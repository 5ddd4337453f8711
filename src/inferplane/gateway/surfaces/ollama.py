"""Ollama's API over any runtime: ``/api/chat``, ``/api/generate``, ``/api/embed``, ``/api/tags``,
``/api/show``, ``/api/ps``, ``/api/version``.

An app written for Ollama moves to any fleet by changing the host. Chat, generate and embed are
translated (``protocol/ollama_surface.py``) into OpenAI requests served by the gateway's one
request path; answers come back as Ollama JSON, streams as NDJSON, errors as ``{"error": "..."}``
with the same status. The model list, ``show`` and ``ps`` describe the served deployments.

Names: Ollama calls a model ``name:tag``; a deployment ``smollm2`` is listed as
``smollm2:latest`` and both spellings reach it (Ollama treats a missing tag as ``latest``).
Embeddings go to deployments that serve them (the deployment field ``embeddings``); a chat
deployment answers 400 naming that field.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import orjson

from inferplane.gateway.http1 import Request, Responder
from inferplane.gateway.surfaces.translating import TranslatingResponder
from inferplane.protocol.errors import TranslationError
from inferplane.protocol.ollama_surface import (
    OpenAIToOllamaStream,
    chat_from_ollama,
    created_at,
    embed_from_ollama,
    error_body,
    generate_from_ollama,
    openai_to_chat,
    openai_to_embed,
    openai_to_generate,
)
from inferplane.protocol.ollama_surface import error_from_openai as _error_from_openai

if TYPE_CHECKING:
    from inferplane.gateway.app import Gateway, _Served

__all__ = ["OLLAMA_API_VERSION", "OllamaSurface"]

Handler = Callable[[Request, Responder], Awaitable[None]]

OLLAMA_API_VERSION = "0.33.0-rc2"
"""The Ollama release whose API this surface follows (ollama/ollama at fb30760, tag v0.33.0-rc2)."""

_FAR_FUTURE_S = 100 * 365 * 86400  # replicas do not unload on a timer: "expires" far ahead


def _errors(_status: int, body: bytes, _request_id: str | None) -> bytes:
    return _error_from_openai(body)


class _Encoder:
    __slots__ = ("kind", "model", "stream_content_type", "t0")

    def __init__(self, kind: str, model: str) -> None:
        self.kind = kind  # "chat" | "generate" | "embed"
        self.model = model
        self.t0 = time.perf_counter_ns()
        self.stream_content_type = "application/x-ndjson"

    def body(self, body: bytes) -> bytes:
        obj = orjson.loads(body)
        total = time.perf_counter_ns() - self.t0
        if self.kind == "chat":
            return orjson.dumps(openai_to_chat(obj, self.model, total))
        if self.kind == "embed":
            return orjson.dumps(openai_to_embed(obj, self.model, total))
        return orjson.dumps(openai_to_generate(obj, self.model, total))

    def stream(self) -> OpenAIToOllamaStream:
        return OpenAIToOllamaStream(self.kind, self.model, self.t0)


class OllamaSurface:
    """Serves Ollama's API through ``gateway``'s request path (built once, by the Gateway)."""

    prefix = "/api/"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def routes(self) -> dict[str, dict[str, Handler]]:
        return {"/api/chat": {"POST": self.chat}, "/api/generate": {"POST": self.generate},
                "/api/embed": {"POST": self.embed}, "/api/tags": {"GET": self.tags},
                "/api/show": {"POST": self.show}, "/api/ps": {"GET": self.ps},
                "/api/version": {"GET": self.version}}

    def wrap(self, out: Responder) -> TranslatingResponder:
        return TranslatingResponder(out, _errors)

    # -- helpers -------------------------------------------------------------------------

    def _served(self, name: str) -> _Served | None:
        served = self.gateway.served
        if name in served:
            return served[name]
        if name.endswith(":latest"):
            return served.get(name[: -len(":latest")])
        return None

    @staticmethod
    def _parse(request: Request, out: TranslatingResponder) -> dict[str, Any] | None:
        try:
            body = orjson.loads(request.body) if request.body else None
        except orjson.JSONDecodeError as exc:
            out.send_native(400, error_body(f"invalid character in request body: {exc}"))
            return None
        if not isinstance(body, dict):
            out.send_native(400, error_body("missing request body" if body is None else "request body must be an object"))
            return None
        return body

    def _deployment(self, body: dict[str, Any], out: TranslatingResponder) -> _Served | None:
        name = body.get("model")
        served = self._served(name) if isinstance(name, str) else None
        if served is None:
            out.send_native(404 if isinstance(name, str) and name else 400,
                            error_body(f"model '{name}' not found" if name else "model is required"))
        return served

    async def _forward(self, request: Request, out: TranslatingResponder, route: str, kind: str, model: str,
                       served: _Served, body: dict[str, Any]) -> None:
        out.encoder = _Encoder(kind, model)
        body["model"] = served.config.name
        path = {"chat": "/v1/chat/completions", "completions": "/v1/completions", "embeddings": "/v1/embeddings"}
        inner = Request(request.method, path[route], request.query, request.headers, orjson.dumps(body),
                        request.keep_alive, request.http_version)
        await self.gateway.serve_canonical(inner, cast(Responder, out), route)  # it writes as a Responder does

    # -- inference -----------------------------------------------------------------------

    async def chat(self, request: Request, out: Responder) -> None:
        assert isinstance(out, TranslatingResponder)
        body = self._parse(request, out)
        if body is None or (served := self._deployment(body, out)) is None:
            return
        try:
            chat = chat_from_ollama(body)
        except TranslationError as exc:
            out.send_native(400, error_body(str(exc)))
            return
        if not chat["messages"]:  # Ollama loads the model and answers at once
            out.send_native(200, orjson.dumps({"model": body["model"], "created_at": created_at(),
                                               "message": {"role": "assistant", "content": ""},
                                               "done_reason": "load", "done": True}))
            return
        await self._forward(request, out, "chat", "chat", body["model"], served, chat)

    async def generate(self, request: Request, out: Responder) -> None:
        assert isinstance(out, TranslatingResponder)
        body = self._parse(request, out)
        if body is None or (served := self._deployment(body, out)) is None:
            return
        try:
            route, openai = generate_from_ollama(body)
        except TranslationError as exc:
            out.send_native(400, error_body(str(exc)))
            return
        if not body.get("prompt") and not body.get("images"):  # Ollama loads the model and answers at once
            out.send_native(200, orjson.dumps({"model": body["model"], "created_at": created_at(), "response": "",
                                               "done": True, "done_reason": "load"}))
            return
        await self._forward(request, out, route, "generate", body["model"], served, openai)

    async def embed(self, request: Request, out: Responder) -> None:
        assert isinstance(out, TranslatingResponder)
        body = self._parse(request, out)
        if body is None or (served := self._deployment(body, out)) is None:
            return
        if not getattr(served.config, "embeddings", False) or "embeddings" not in self.gateway.canonical_routes:
            out.send_native(400, error_body(
                f"the model '{body['model']}' does not serve embeddings: embeddings come from a deployment with "
                "'embeddings: true' in its config (its own deployment, e.g. smollm2-embed)"))
            return
        try:
            openai = embed_from_ollama(body)
        except TranslationError as exc:
            out.send_native(400, error_body(str(exc)))
            return
        await self._forward(request, out, "embeddings", "embed", body["model"], served, openai)

    # -- the model list ------------------------------------------------------------------

    def _entry(self, s: _Served) -> dict[str, Any]:
        c = s.config
        name = c.name if ":" in c.name else f"{c.name}:latest"
        path = os.path.expanduser(c.model)
        size = os.path.getsize(path) if os.path.isfile(path) else 0
        fmt = "gguf" if c.model.endswith(".gguf") or c.runtime in ("embedded", "llamacpp", "ollama") else ""
        return {"name": name, "model": name, "modified_at": created_at(s.created), "size": size,
                "digest": hashlib.sha256(f"{c.name}\0{c.runtime}\0{c.model}".encode()).hexdigest(),
                "details": {"parent_model": "", "format": fmt, "family": "", "families": None,
                            "parameter_size": "", "quantization_level": c.quantization or ""}}

    async def tags(self, _request: Request, out: Responder) -> None:
        assert isinstance(out, TranslatingResponder)
        out.send_native(200, orjson.dumps({"models": [self._entry(s) for s in self.gateway.served.values()]}))

    async def ps(self, _request: Request, out: Responder) -> None:
        assert isinstance(out, TranslatingResponder)
        models = []
        for s in self.gateway.served.values():
            if self.gateway.registry.ready(s.config.name):
                e = self._entry(s)
                models.append({k: e[k] for k in ("name", "model", "size", "digest", "details")} |
                              {"expires_at": created_at(time.time() + _FAR_FUTURE_S), "size_vram": 0,
                               "context_length": s.config.context_length_tokens or 0})
        out.send_native(200, orjson.dumps({"models": models}))

    async def show(self, request: Request, out: Responder) -> None:
        assert isinstance(out, TranslatingResponder)
        body = self._parse(request, out)
        if body is None:
            return
        if not body.get("model") and body.get("name"):  # the deprecated spelling
            body["model"] = body["name"]
        served = self._deployment(body, out)
        if served is None:
            return
        c = served.config
        caps = ["embedding"] if getattr(c, "embeddings", False) else ["completion"]
        if served.capabilities.tools and caps == ["completion"]:
            caps.append("tools")
        if served.parts is not None and "image_url" in served.parts:
            caps.append("vision")
        info: dict[str, Any] = {"general.architecture": "", "inferplane.runtime": c.runtime}
        if c.context_length_tokens:
            info["general.context_length"] = c.context_length_tokens
        out.send_native(200, orjson.dumps({
            "modelfile": f"# served by inferplane on the {c.runtime} runtime\nFROM {c.model}\n",
            "parameters": "", "template": "", "details": self._entry(served)["details"], "model_info": info,
            "capabilities": caps, "modified_at": created_at(served.created)}))

    async def version(self, _request: Request, out: Responder) -> None:
        assert isinstance(out, TranslatingResponder)
        out.send_native(200, orjson.dumps({"version": OLLAMA_API_VERSION}))
