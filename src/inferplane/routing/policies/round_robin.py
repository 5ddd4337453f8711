"""Round robin: each request to the next candidate in turn."""

from __future__ import annotations

from collections.abc import Sequence

from inferplane.routing.types import Candidate, Decision, RouteRequest

__all__ = ["RoundRobinPolicy"]


class RoundRobinPolicy:
    """Cycles through the candidates in the order given, ignoring load.

    Score of a candidate = how many turns until it would be picked (chosen = 0).
    When the candidate list changes length the rotation continues from the same counter.
    """

    name = "round_robin"

    def __init__(self) -> None:
        self._next = 0

    def choose(self, request: RouteRequest, candidates: Sequence[Candidate]) -> Decision:
        """Return the next candidate in rotation. Requires at least one candidate."""
        n = len(candidates)
        start = self._next % n
        self._next = start + 1
        scores = {c.endpoint_id: float((i - start) % n) for i, c in enumerate(candidates)}
        return Decision(candidates[start].endpoint_id, self.name, scores)

    def on_routed(self, request: RouteRequest, endpoint_id: str) -> None:
        """Stateless per request: nothing to learn."""

    def on_removed(self, endpoint_id: str) -> None:
        """Nothing is kept per endpoint."""
