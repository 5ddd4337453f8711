"""Session affinity: consistent hashing with bounded loads.

Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with Bounded Loads" (SODA 2018):
each key goes to the first replica clockwise from its hash on a ring of virtual nodes
whose load is under ``ceil(c * (m + 1) / n)`` (``m`` requests outstanding in all, ``n``
replicas); a full replica passes the key on along the ring. Here the bound is weighted by
capacity: replica ``i`` may hold ``ceil(c * (m + 1) * capacity_i / sum(capacity))``.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Sequence

from inferplane.routing.policies.least_load import LeastLoadPolicy
from inferplane.routing.types import Candidate, Decision, RouteRequest

__all__ = ["HashRing", "SessionPolicy"]


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


class HashRing:
    """A ring of ``vnodes`` points per endpoint; membership changes move only that
    endpoint's arcs (a removed endpoint's keys go to their next owners, nothing else moves).
    """

    __slots__ = ("_members", "_owners", "_points", "vnodes")

    def __init__(self, vnodes: int = 128) -> None:
        """Raises ValueError when ``vnodes`` is not positive."""
        if vnodes <= 0:
            raise ValueError(f"vnodes must be positive, got {vnodes}")
        self.vnodes = vnodes
        self._members: set[str] = set()
        self._points: list[int] = []
        self._owners: list[str] = []

    def __contains__(self, endpoint_id: object) -> bool:
        return endpoint_id in self._members

    def add(self, endpoint_id: str) -> None:
        """Place ``endpoint_id``'s virtual nodes (no-op if present). O(points) per call."""
        if endpoint_id in self._members:
            return
        self._members.add(endpoint_id)
        pairs = list(zip(self._points, self._owners, strict=True))
        pairs.extend((_hash64(f"{endpoint_id}#{i}"), endpoint_id) for i in range(self.vnodes))
        pairs.sort()
        self._points = [p for p, _ in pairs]
        self._owners = [o for _, o in pairs]

    def remove(self, endpoint_id: str) -> None:
        """Take ``endpoint_id``'s virtual nodes off the ring (no-op if absent)."""
        if endpoint_id not in self._members:
            return
        self._members.discard(endpoint_id)
        pairs = [
            (p, o) for p, o in zip(self._points, self._owners, strict=True) if o != endpoint_id
        ]
        self._points = [p for p, _ in pairs]
        self._owners = [o for _, o in pairs]

    def walk(self, key: str) -> list[str]:
        """Distinct endpoints in clockwise order starting from ``key``'s position."""
        n = len(self._points)
        if n == 0:
            return []
        start = bisect.bisect_left(self._points, _hash64(key))
        seen: dict[str, None] = {}
        want = len(self._members)
        owners = self._owners
        for k in range(n):
            seen.setdefault(owners[(start + k) % n])
            if len(seen) == want:
                break
        return list(seen)


class SessionPolicy:
    """Keeps a session on one replica while that replica is within its load bound.

    1. No ``session_key``: delegates to least load (the Decision still says ``session``).
    2. Otherwise walks the ring from the key; the first candidate whose load
       ``in_flight + waiting`` is below its bound wins.
    Score = rank in the walk, plus the number of candidates if the candidate was over its
    bound (so the chosen one has the lowest score). New candidates join the ring on sight;
    ``on_removed`` takes them off.
    """

    name = "session"

    def __init__(self, *, load_factor: float = 1.25, vnodes: int = 128) -> None:
        """``load_factor`` is Mirrokni's ``c``; it must be > 1 for the bound to be usable."""
        if load_factor <= 1.0:
            raise ValueError(f"load_factor must be > 1, got {load_factor}")
        self.load_factor = load_factor
        self._ring = HashRing(vnodes)
        self._fallback = LeastLoadPolicy()

    def choose(self, request: RouteRequest, candidates: Sequence[Candidate]) -> Decision:
        """Return the session's replica, or the next one along the ring if it is full."""
        if request.session_key is None:
            fallback = self._fallback.choose(request, candidates)
            return Decision(fallback.endpoint_id, self.name, fallback.scores)
        by_id = {c.endpoint_id: c for c in candidates}
        for endpoint_id in by_id:
            self._ring.add(endpoint_id)
        total_load = sum(c.in_flight + c.waiting for c in candidates)
        total_capacity = sum(max(c.capacity, 1) for c in candidates)
        budget = self.load_factor * (total_load + 1) / total_capacity
        n = len(candidates)
        scores: dict[str, float] = {}
        chosen: str | None = None
        for endpoint_id in self._ring.walk(request.session_key):
            c = by_id.get(endpoint_id)
            if c is None:
                continue
            rank = float(len(scores))
            if c.in_flight + c.waiting < math.ceil(budget * max(c.capacity, 1)):
                if chosen is None:
                    chosen = endpoint_id
                scores[endpoint_id] = rank
            else:
                scores[endpoint_id] = rank + n
        if chosen is None:  # unreachable with load_factor > 1; kept as a safe fallback
            fallback = self._fallback.choose(request, candidates)
            return Decision(fallback.endpoint_id, self.name, fallback.scores)
        return Decision(chosen, self.name, scores)

    def on_routed(self, request: RouteRequest, endpoint_id: str) -> None:
        """Affinity is a function of the ring; nothing to learn."""

    def on_removed(self, endpoint_id: str) -> None:
        """Take the endpoint off the ring: only its sessions move."""
        self._ring.remove(endpoint_id)
