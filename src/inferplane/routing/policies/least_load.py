"""Least load: the candidate with the fewest outstanding requests per slot."""

from __future__ import annotations

from collections.abc import Sequence

from inferplane.routing.policies._load import RotatingTieBreak, as_candidates, load_ratio
from inferplane.routing.types import Candidate, CandidateSet, Decision, RouteRequest

__all__ = ["LeastLoadPolicy"]


class LeastLoadPolicy:
    """Picks the minimum of ``max(in_flight, running + waiting) / capacity``; exact ties rotate.

    Exact, not sampled: the router's candidate sets keep their members in a heap ordered by
    load, re-filed on every acquire and release, so the minimum costs O(1) amortised (a
    plain list is scanned). Score of the chosen candidate = its load ratio.
    """

    name = "least_load"
    needs_prefix = False

    def __init__(self) -> None:
        self._ties = RotatingTieBreak()

    def choose(self, request: RouteRequest, candidates: CandidateSet | Sequence[Candidate]) -> Decision:
        """Return the least loaded candidate. Requires at least one candidate."""
        best = as_candidates(candidates, self._ties).least_loaded()
        return Decision(best.endpoint_id, self.name, {best.endpoint_id: load_ratio(best)})

    def on_routed(self, request: RouteRequest, endpoint_id: str) -> None:
        """Load comes from the candidates; nothing to learn."""

    def on_added(self, endpoint_id: str) -> None:
        """Nothing is kept per endpoint."""

    def on_removed(self, endpoint_id: str) -> None:
        """Nothing is kept per endpoint."""
