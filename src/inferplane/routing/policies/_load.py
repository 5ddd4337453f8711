"""Load arithmetic shared by the policies."""

from __future__ import annotations

from collections.abc import Sequence

from inferplane.routing.types import Candidate

__all__ = ["RotatingTieBreak", "load_ratio"]


def load_ratio(candidate: Candidate) -> float:
    """Outstanding requests per slot: ``max(in_flight, running + waiting) / capacity``.

    ``in_flight`` is the gateway's own, always-fresh count; ``running + waiting`` is the
    runtime's last-scraped view, which also sees requests other clients sent it. Adding
    them would count this gateway's queued requests twice. A capacity below 1 counts as 1.
    """
    outstanding = max(candidate.in_flight, candidate.running + candidate.waiting)
    return outstanding / max(candidate.capacity, 1)


class RotatingTieBreak:
    """Picks among equally good candidates in turn, so ties are shared fairly.

    Each call with ``k`` tied indices returns ``tied[counter % k]`` and advances the
    counter; repeated calls with the same ties therefore cycle through all of them.
    """

    __slots__ = ("_counter",)

    def __init__(self) -> None:
        self._counter = 0

    def pick(self, tied: Sequence[int]) -> int:
        """One of ``tied`` (non-empty indices), rotating across calls."""
        if len(tied) == 1:
            return tied[0]
        choice = tied[self._counter % len(tied)]
        self._counter += 1
        return choice

    def argmin(self, scores: Sequence[float]) -> int:
        """Index of the lowest score; exact ties are rotated."""
        best = min(scores)
        return self.pick([i for i, s in enumerate(scores) if s == best])
