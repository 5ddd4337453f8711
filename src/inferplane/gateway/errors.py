"""OpenAI error responses: the gateway's only way to say no."""

from __future__ import annotations

from inferplane.gateway.http1 import Responder
from inferplane.protocol.errors import error_body

__all__ = ["error_response"]

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

    A 429 or 503 always carries ``Retry-After`` (1 s unless ``headers`` says otherwise), so
    clients that honour it back off instead of retrying in a tight loop.
    """
    body = error_body(message, _TYPES.get(status, "server_error"), param=param, code=code)
    hs = [*(headers or ()), ("Content-Type", "application/json")]
    if status in (429, 503) and not any(k.lower() == "retry-after" for k, _ in hs):
        hs.append(("Retry-After", "1"))
    out.send(status, body, hs)
