"""Plain data passed between the registry, the policies and the gateway.

Policies see a ``CandidateSet`` (``Candidate`` snapshots built on demand, only of the
endpoints the policy looks at) and a ``RouteRequest``, and return a ``Decision``; they
never do I/O. The router's candidate sets (``routing/candidates.py``) implement
``CandidateSet`` over the registry in O(1) per question; ``CandidateList`` implements it over a
plain list (tables in tests, small pools).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

__all__ = ["Candidate", "CandidateSet", "Decision", "Policy", "RouteRequest"]


class Candidate(NamedTuple):
    """What a policy may know of one ready endpoint at decision time.

    An immutable snapshot, built for each endpoint a policy looks at in each decision: a
    NamedTuple rather than a frozen dataclass because it is built on the hot path, and a
    frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field) costs about four
    times as much (3 µs against 0.7 µs here).
    """

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


@dataclass(slots=True)
class RouteRequest:
    """What routing needs to know of one request. Read-only for policies; not ``frozen=True``
    (one is made per request, and a frozen dataclass's ``__init__`` costs several times as much)."""

    model: str
    prefix_hashes: Sequence[int] = ()
    """Chained hashes of the prompt's prefixes at its checkpoints, shortest first
    (``routing.prefix.checkpoint_hashes``); empty when the policy needs none."""
    session_key: str | None = None
    """From ``x-session-id`` or the body's ``user`` field."""


@dataclass(slots=True)
class Decision:
    """The chosen endpoint, and each candidate's score for explainability. Read-only for its
    callers; not ``frozen=True`` for the reason ``RouteRequest`` is not."""

    endpoint_id: str
    policy: str
    scores: dict[str, float] = field(default_factory=dict)
    """endpoint_id -> score (lower is better) as the policy saw it."""


class CandidateSet(Protocol):
    """The endpoints a policy may choose from for one attempt, asked only about what it needs.

    Every method answers in time independent of the set's size, except where the set is
    a plain list (``CandidateList``) or in the degenerate cases each one names. Members a
    request must skip (already tried, breaker open) are never returned.
    """

    def __len__(self) -> int:
        """Members, counting skipped ones (an upper bound of what can be returned)."""

    def sample(self, k: int, rng: random.Random) -> list[Candidate]:
        """Up to ``k`` distinct members drawn at random (all of them, in the set's order,
        when there are at most ``k``)."""

    def rotate(self, start: int) -> tuple[Candidate, int]:
        """The first member at position >= ``start`` (cyclically), and that position."""

    def get(self, endpoint_id: str) -> Candidate | None:
        """The member with that id, or None if it is not a member or must be skipped."""

    def least_loaded(self, *, rotate: bool = True) -> Candidate:
        """A member with the lowest ``load_ratio``; with ``rotate``, exact ties are taken in
        turn (the one returned goes behind its equals)."""

    def load_totals(self) -> tuple[float, int]:
        """``(sum of in_flight + waiting, sum of capacity)`` over the members."""

    def ids(self) -> Sequence[str] | None:
        """Every member's id when the set is a plain list; None for the router's sets, whose
        membership policies learn from ``on_added`` / ``on_removed`` instead."""


class Policy(Protocol):
    """Pure routing logic: picks one of the candidates.

    Contract:
    1. ``choose`` is called with a set of at least one usable candidate; it returns one.
       It asks the set only what it needs (sampling where the policy allows), so a
       decision costs the same for 2 endpoints and for 1,000.
    2. ``on_routed`` is called after the request was sent to the chosen endpoint, so
       stateful policies (prefix, session) can learn from their decisions.
    3. ``on_added`` / ``on_removed`` are called when an endpoint joins or leaves the pool.
    No I/O, no clocks beyond what is passed in; synchronous; not thread-safe (the
    gateway calls it from its event loop only).
    """

    name: str
    needs_prefix: bool
    """Whether ``choose`` reads ``request.prefix_hashes`` (else the gateway hashes nothing)."""

    def choose(self, request: RouteRequest, candidates: CandidateSet) -> Decision: ...

    def on_routed(self, request: RouteRequest, endpoint_id: str) -> None: ...

    def on_added(self, endpoint_id: str) -> None: ...

    def on_removed(self, endpoint_id: str) -> None: ...
