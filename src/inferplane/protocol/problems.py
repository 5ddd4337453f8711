"""Why a request is invalid, as the protocol checks say it (the gateway renders it as a 400)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RequestProblem"]


@dataclass(frozen=True, slots=True)
class RequestProblem:
    """Why a request is invalid: an OpenAI ``invalid_request_error``."""

    message: str
    param: str | None = None
    code: str | None = None
