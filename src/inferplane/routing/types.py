"""Plain data passed between the registry, the policies and the gateway.

Policies see ``Candidate`` snapshots and a ``RouteRequest`` and return a ``Decision``;
they never do I/O. The registry builds the snapshots; the gateway builds the request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Candidate", "Decision", "Policy", "RouteRequest"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """What a policy may know of one ready endpoint at decision time."""

    endpoint_id: str
    """Stable id of the endpoint (unique within the gateway)."""
    in_flight: int = 0
    """Requests the gateway has sent there and not yet finished."""
    waiting: int = 0
    """Requests queued inside the runtime (last scrape), 0 when unknown."""
    running: int = 0
    """Requests running inside the runtime (last scrape), 0 when unknown."""
    kv_cache_usage: float | None = None
    """KV-cache usage 0..1 (last scrape), None when unknown."""
    capacity: int = 1
    """Concurrent sequences the endpoint serves without queueing (slots / max seqs)."""
    region: str | None = None
    priority: int = 0
    """Tier: lower is preferred."""


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """What routing needs to know of one request."""

    model: str
    prefix_hashes: tuple[int, ...] = ()
    """Chained hashes of the prompt's fixed-size blocks, first block first."""
    session_key: str | None = None
    """From ``x-session-id`` or the body's ``user`` field."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The chosen endpoint, and each candidate's score for explainability."""

    endpoint_id: str
    policy: str
    scores: dict[str, float] = field(default_factory=dict)
    """endpoint_id -> score (lower is better) as the policy saw it."""


class Policy(Protocol):
    """Pure routing logic: picks one of the candidates.

    Contract:
    1. ``choose`` is called with at least one candidate; it returns one of them.
    2. ``on_routed`` is called after the request was sent to the chosen endpoint, so
       stateful policies (prefix, session) can learn from their decisions.
    3. ``on_removed`` is called when an endpoint leaves the pool.
    No I/O, no clocks beyond what is passed in; synchronous; not thread-safe (the
    gateway calls it from its event loop only).
    """

    name: str

    def choose(self, request: RouteRequest, candidates: Sequence[Candidate]) -> Decision: ...

    def on_routed(self, request: RouteRequest, endpoint_id: str) -> None: ...

    def on_removed(self, endpoint_id: str) -> None: ...
