"""Round robin: each request to the next candidate in turn."""

from __future__ import annotations

from collections.abc import Sequence

from inferplane.routing.policies._load import as_candidates
from inferplane.routing.types import Candidate, CandidateSet, Decision, RouteRequest

__all__ = ["RoundRobinPolicy"]


class RoundRobinPolicy:
    """Cycles through the candidates in their set's order, ignoring load. O(1) per decision.

    Score of the chosen candidate = 0 (no other candidate is looked at). When the set
    changes size the rotation continues from the same counter; a skipped member (tried,
    breaker open) passes its turn to the next one.
    """

    name = "round_robin"
    needs_prefix = False

    def __init__(self) -> None:
        self._next = 0

    def choose(self, request: RouteRequest, candidates: CandidateSet | Sequence[Candidate]) -> Decision:
        """Return the next candidate in rotation. Requires at least one candidate."""
        cands = as_candidates(candidates)
        chosen, i = cands.rotate(self._next % len(cands))
        self._next = i + 1
        return Decision(chosen.endpoint_id, self.name, {chosen.endpoint_id: 0.0})

    def on_routed(self, request: RouteRequest, endpoint_id: str) -> None:
        """Stateless per request: nothing to learn."""

    def on_added(self, endpoint_id: str) -> None:
        """Nothing is kept per endpoint."""

    def on_removed(self, endpoint_id: str) -> None:
        """Nothing is kept per endpoint."""
