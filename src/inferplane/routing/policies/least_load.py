"""Least load: the candidate with the fewest outstanding requests per slot."""

from __future__ import annotations

from collections.abc import Sequence

from inferplane.routing.policies._load import RotatingTieBreak, load_ratio
from inferplane.routing.types import Candidate, Decision, RouteRequest

__all__ = ["LeastLoadPolicy"]


class LeastLoadPolicy:
    """Picks the minimum of ``(in_flight + waiting) / capacity``; exact ties rotate.

    Score = that load ratio.
    """

    name = "least_load"

    def __init__(self) -> None:
        self._ties = RotatingTieBreak()

    def choose(self, request: RouteRequest, candidates: Sequence[Candidate]) -> Decision:
        """Return the least loaded candidate. Requires at least one candidate."""
        loads = [load_ratio(c) for c in candidates]
        best = self._ties.argmin(loads)
        scores = {c.endpoint_id: load for c, load in zip(candidates, loads, strict=True)}
        return Decision(candidates[best].endpoint_id, self.name, scores)

    def on_routed(self, request: RouteRequest, endpoint_id: str) -> None:
        """Load comes from the snapshots; nothing to learn."""

    def on_removed(self, endpoint_id: str) -> None:
        """Nothing is kept per endpoint."""
