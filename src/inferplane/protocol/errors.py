"""OpenAI-style error bodies.

``{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}`` is what the
official OpenAI SDKs parse into ``APIError.message`` / ``.code`` / ``.param``.
"""

from __future__ import annotations

import orjson

from inferplane.errors import InferplaneError

__all__ = ["NotTranslatable", "error_body", "sse_error_event"]


def error_body(message: str, type_: str, *, param: str | None = None, code: str | None = None) -> bytes:
    """Serialized OpenAI error body."""
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def sse_error_event(message: str, type_: str = "upstream_error", *, code: str | None = None) -> bytes:
    """An SSE event carrying an OpenAI error body, used to end a broken stream explicitly.

    The OpenAI Python SDK raises ``APIError`` when a stream event has an ``error`` key.
    """
    return b"data: " + error_body(message, type_, code=code) + b"\n\n"


class NotTranslatable(InferplaneError, ValueError):
    """A request (or answer) that one API's shape cannot carry into another's.

    Raised by the pure translators in ``protocol``; the gateway answers it with a 400 in the
    client's own API shape (``param`` names the offending field, when there is one).
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param
