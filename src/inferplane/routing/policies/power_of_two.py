"""Power of two choices: sample two candidates at random, take the less loaded."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from inferplane.routing.policies._load import load_ratio
from inferplane.routing.types import Candidate, Decision, RouteRequest

__all__ = ["PowerOfTwoPolicy"]


class PowerOfTwoPolicy:
    """Mitzenmacher's two random choices: near least-load balance without herding.

    Score of a sampled candidate = its load ratio; of a candidate not sampled = ``inf``.
    With two candidates both are always sampled, so the more loaded one is never chosen
    (an exact tie goes to the first sampled, which is random).

    Randomness comes only from ``rng`` (pass a seeded ``random.Random`` for replayable
    decisions); the default is seeded with 0.
    """

    name = "power_of_two"

    def __init__(self, rng: random.Random | None = None, *, seed: int | None = None) -> None:
        if rng is not None and seed is not None:
            raise ValueError("pass either rng or seed, not both")
        self._rng = rng if rng is not None else random.Random(0 if seed is None else seed)

    def choose(self, request: RouteRequest, candidates: Sequence[Candidate]) -> Decision:
        """Return the less loaded of two distinct random candidates (the only one if alone)."""
        n = len(candidates)
        if n == 1:
            only = candidates[0]
            return Decision(only.endpoint_id, self.name, {only.endpoint_id: load_ratio(only)})
        i, j = self._rng.sample(range(n), 2)
        load_i, load_j = load_ratio(candidates[i]), load_ratio(candidates[j])
        scores = {c.endpoint_id: math.inf for c in candidates}
        scores[candidates[i].endpoint_id] = load_i
        scores[candidates[j].endpoint_id] = load_j
        best = j if load_j < load_i else i
        return Decision(candidates[best].endpoint_id, self.name, scores)

    def on_routed(self, request: RouteRequest, endpoint_id: str) -> None:
        """Load comes from the snapshots; nothing to learn."""

    def on_removed(self, endpoint_id: str) -> None:
        """Nothing is kept per endpoint."""
