"""The Ollama runtime's dialect: OpenAI requests in, Ollama's native API out, answers back as OpenAI.

Only the glue lives here (paths, the model tag, keep-alive, error bodies, the exception the
proxy expects); the field-by-field translation is ``protocol/ollama.py``, which the Ollama
client surface shares. Clients only ever see OpenAI through this dialect.
"""

from __future__ import annotations

from typing import Any

import orjson

from inferplane.protocol.errors import NotTranslatable
from inferplane.protocol.ollama import (
    OllamaToOpenAIStream,
    chat_to_ollama,
    completion_to_ollama,
    ollama_chat_to_openai,
    ollama_generate_to_openai,
)
from inferplane.runtimes.base import Dialect, UnsupportedRequest
from inferplane.runtimes.openai_errors import openai_error

__all__ = ["OllamaDialect", "OllamaStreamTranslator"]

OllamaStreamTranslator = OllamaToOpenAIStream
"""NDJSON -> OpenAI SSE, one per stream (the name this module has always exported)."""


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
        try:
            if route == "chat":
                return self.chat_path, orjson.dumps(chat_to_ollama(body, self.model_tag, self.keep_alive))
            return self.completions_path, orjson.dumps(completion_to_ollama(body, self.model_tag, self.keep_alive))
        except NotTranslatable as exc:
            raise UnsupportedRequest(str(exc), exc.param) from exc

    def response(self, route: str, model: str, status: int, body: bytes) -> tuple[int, bytes]:
        if status >= 400:
            return status, openai_error(status, body)
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            return 502, openai_error(502, b"Ollama sent an answer that is not JSON: " + body[:200])
        out = ollama_chat_to_openai(obj, model) if route == "chat" else ollama_generate_to_openai(obj, model)
        return status, orjson.dumps(out)

    def stream(self, route: str, model: str, include_usage: bool = False) -> OllamaToOpenAIStream:
        return OllamaToOpenAIStream(route, model, include_usage)
