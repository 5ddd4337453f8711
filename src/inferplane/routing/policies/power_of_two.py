"""Power of two choices: sample two candidates at random, take the less loaded."""

from __future__ import annotations

import random
from collections.abc import Sequence

from inferplane.routing.policies._load import as_candidates, load_ratio
from inferplane.routing.types import Candidate, CandidateSet, Decision, RouteRequest

__all__ = ["PowerOfTwoPolicy"]


class PowerOfTwoPolicy:
    """Mitzenmacher's two random choices: near least-load balance without herding. O(1).

    Scores = the two sampled candidates' load ratios (nobody else is looked at). With two
    candidates both are always sampled, so the more loaded one is never chosen (an exact
    tie goes to either at random).

    Randomness comes only from ``rng`` (pass a seeded ``random.Random`` for replayable
    decisions); the default is seeded with 0.
    """

    name = "power_of_two"
    needs_prefix = False

    def __init__(self, rng: random.Random | None = None, *, seed: int | None = None) -> None:
        if rng is not None and seed is not None:
            raise ValueError("pass either rng or seed, not both")
        self._rng = rng if rng is not None else random.Random(0 if seed is None else seed)

    def choose(self, request: RouteRequest, candidates: CandidateSet | Sequence[Candidate]) -> Decision:
        """Return the less loaded of two distinct random candidates (the only one if alone)."""
        picked = as_candidates(candidates).sample(2, self._rng)
        scores = {c.endpoint_id: load_ratio(c) for c in picked}
        best = picked[0]
        if len(picked) == 2:
            a, b = scores[best.endpoint_id], scores[picked[1].endpoint_id]
            if b < a or (b == a and self._rng.random() < 0.5):  # a tie: either, at random
                best = picked[1]
        return Decision(best.endpoint_id, self.name, scores)

    def on_routed(self, request: RouteRequest, endpoint_id: str) -> None:
        """Load comes from the candidates; nothing to learn."""

    def on_added(self, endpoint_id: str) -> None:
        """Nothing is kept per endpoint."""

    def on_removed(self, endpoint_id: str) -> None:
        """Nothing is kept per endpoint."""
