"""OpenAI error responses for the gateway's own routes (``/v1/models``, ``/admin/*``).

Inference routes render errors through their surface (``gateway/surfaces``); this is the
OpenAI surface's rendering for everything else.
"""

from __future__ import annotations

from inferplane.gateway.http_messages import Responder
from inferplane.gateway.surfaces.base import Rejection
from inferplane.gateway.surfaces.openai import openai_error

__all__ = ["error_response"]


def error_response(
    out: Responder,
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> None:
    """Answer with an OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``.

    A 429 or 503 always carries ``Retry-After`` (1 s unless ``headers`` says otherwise).
    """
    out.send(*openai_error(Rejection(status, message, param=param, code=code, headers=headers or ())))
