"""Load arithmetic and the plain-list candidate set, shared by the policies."""

from __future__ import annotations

import random
from collections.abc import Sequence

from inferplane.routing.types import Candidate, CandidateSet

__all__ = ["CandidateList", "RotatingTieBreak", "as_candidates", "load_ratio"]


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
        if scores.count(best) == 1:  # the usual case, at C speed
            return scores.index(best)
        return self.pick([i for i, s in enumerate(scores) if s == best])


class CandidateList:
    """``types.CandidateSet`` over a plain list: O(n) questions, for tables and small pools."""

    __slots__ = ("_by_id", "_items", "_ties")

    def __init__(self, candidates: Sequence[Candidate], ties: RotatingTieBreak | None = None) -> None:
        if not candidates:
            raise ValueError("a candidate set needs at least one candidate")
        self._items = candidates
        self._ties = ties if ties is not None else RotatingTieBreak()
        self._by_id: dict[str, Candidate] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def sample(self, k: int, rng: random.Random) -> list[Candidate]:
        items = self._items
        if len(items) <= k:
            return list(items)
        return [items[i] for i in rng.sample(range(len(items)), k)]

    def rotate(self, start: int) -> tuple[Candidate, int]:
        i = start % len(self._items)
        return self._items[i], i

    def get(self, endpoint_id: str) -> Candidate | None:
        if self._by_id is None:
            self._by_id = {c.endpoint_id: c for c in self._items}
        return self._by_id.get(endpoint_id)

    def least_loaded(self, *, rotate: bool = True) -> Candidate:
        loads = [load_ratio(c) for c in self._items]
        if not rotate:
            return self._items[loads.index(min(loads))]
        return self._items[self._ties.argmin(loads)]

    def load_totals(self) -> tuple[float, int]:
        return (float(sum(c.in_flight + c.waiting for c in self._items)),
                sum(max(c.capacity, 1) for c in self._items))

    def ids(self) -> Sequence[str] | None:
        return [c.endpoint_id for c in self._items]


def as_candidates(candidates: CandidateSet | Sequence[Candidate],
                  ties: RotatingTieBreak | None = None) -> CandidateSet:
    """``candidates`` as a ``CandidateSet`` (plain lists and tuples are wrapped)."""
    if isinstance(candidates, (list, tuple)):
        return CandidateList(candidates, ties)
    return candidates  # type: ignore[return-value]
