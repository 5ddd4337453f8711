"""Admission: who is asking (``authenticate``) and whether they may go on now (``admit``).

The pipeline calls an :class:`Admission` at two points of every inference request:

1. ``authenticate(headers, key_headers)`` - before the body is parsed, with the request's
   headers and the surface's key headers (``authorization`` carries ``Bearer <key>``, any
   other the bare key, e.g. Anthropic's ``x-api-key``). Returns the :class:`Principal`
   (who it is: ``rec.tenant`` is its ``name``), or raises ``Rejection`` (401, 403).
   Also called, with the OpenAI key header, for the gateway's other non-open paths
   (``/v1/models``, ``/admin/*``, an unknown path: a stranger must not learn which exist).
2. ``await admit(rec, req, principal)`` - after the surface parsed and validated the
   request, before routing; only for a principal whose ``limited`` is True (for any other
   the pipeline skips it: a coroutine per request that admits with no headers costs).
   Returns extra response headers (rate-limit state, e.g.
   ``x-ratelimit-remaining-requests``), or raises ``Rejection`` (429 with ``Retry-After``).
   It may wait (a held request, in priority order); the time waited is the request's
   ``queued_s``. Anything it reserves (tokens, a concurrency slot) is settled by an
   observer of the same implementation at ``finished``, which is called exactly once.

Both run on the event loop for every request: keep them O(1) and non-blocking. The
default :class:`StaticKeys` checks the configured API keys (or none) and admits everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from inferplane.gateway.surfaces.base import InferenceRequest, Rejection
from inferplane.observability.observer import RequestRecord

__all__ = ["ANONYMOUS", "Admission", "Principal", "StaticKeys", "key_from"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who sent a request. ``name`` None: anonymous (no keys configured)."""

    name: str | None = None
    priority: str | None = None
    """Its priority class, for ordering held requests (None: the default)."""
    deployments: frozenset[str] | None = None
    """The deployments it may call (None: all). The pipeline's model lookup answers 403 for any
    other name - served or not, alike - so a key learns nothing of deployments it may not call."""
    priority_rank: int = 1
    """``priority`` as the held-request queue orders it (``config.tenants.PRIORITIES``: 0 first)."""
    limited: bool = False
    """Whether ``admit`` has anything to check for it (rate or concurrency limits). False: the
    pipeline does not call ``admit`` for its requests (it would admit them with no headers)."""


ANONYMOUS = Principal()


class Admission(Protocol):
    """See the module docstring for the contract."""

    def authenticate(self, headers: dict[str, str], key_headers: tuple[str, ...]) -> Principal: ...

    async def admit(self, rec: RequestRecord, req: InferenceRequest,
                    principal: Principal) -> list[tuple[str, str]]: ...


def key_from(headers: dict[str, str], key_headers: tuple[str, ...]) -> str | None:
    """The API key a request carries: ``Authorization: Bearer <key>`` (scheme matched
    case-insensitively, RFC 9110 11.1), or the bare value of another key header; an empty
    value is no key (the next header is tried)."""
    for name in key_headers:
        value = headers.get(name)
        if value is None:
            continue
        if name == "authorization":
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip(" \t"):
                return token.strip(" \t")
            continue
        if value.strip(" \t"):
            return value.strip(" \t")
    return None


_NO_HEADERS: list[tuple[str, str]] = []


class StaticKeys:
    """The configured ``api_keys`` (an empty set: every request is anonymous and admitted)."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self.keys = frozenset(keys)

    def authenticate(self, headers: dict[str, str], key_headers: tuple[str, ...]) -> Principal:
        if not self.keys:
            return ANONYMOUS
        if key_from(headers, key_headers) in self.keys:
            return ANONYMOUS
        hint = " or ".join(f"'{h}: <key>'" if h != "authorization" else "'Authorization: Bearer <key>'"
                           for h in key_headers)
        raise Rejection(401, f"invalid or missing API key (send {hint})", code="invalid_api_key",
                        headers=[("WWW-Authenticate", "Bearer")])

    async def admit(self, rec: RequestRecord, req: InferenceRequest,
                    principal: Principal) -> list[tuple[str, str]]:
        return _NO_HEADERS
