"""Session affinity: consistent hashing with bounded loads.

Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with Bounded Loads" (SODA 2018):
each key goes to the first replica clockwise from its hash on a ring of virtual nodes
whose load is under ``ceil(c * (m + 1) / n)`` (``m`` requests outstanding in all, ``n``
replicas); a full replica passes the key on along the ring. Here the bound is weighted by
capacity: replica ``i`` may hold ``ceil(c * (m + 1) * capacity_i / sum(capacity))``.
A decision walks the ring only until the first replica under its bound: with ``c > 1``
that is a few steps whatever the fleet's size (the totals come kept up to date).
"""

from __future__ import annotations

import bisect
import hashlib
import math
from array import array
from collections.abc import Iterator, Sequence

from inferplane.routing.policies._load import RotatingTieBreak, as_candidates, load_ratio
from inferplane.routing.types import Candidate, CandidateSet, Decision, RouteRequest

__all__ = ["HashRing", "SessionPolicy"]


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


class HashRing:
    """A ring of ``vnodes`` points per endpoint; membership changes move only that
    endpoint's arcs (a removed endpoint's keys go to their next owners, nothing else moves).

    Membership changes are batched: ``add`` / ``remove`` are O(vnodes) and the ring is
    re-sorted once, at the next ``walk`` (one pass: the old points are already sorted). A
    removed endpoint's points stay (``walk`` skips them) until they outnumber the members':
    an endpoint that leaves and comes back (a failed probe) re-sorts nothing.

    Finding a key's place reads a handful of memory lines whatever the ring's size: the points'
    hashes sit in one flat array, and a table by the hash's leading bits (about 16 points per
    entry) narrows the binary search to one entry's run. A search over a list of 128,000
    ``(hash, owner)`` tuples (1,000 endpoints) followed pointers to 17 tuples and their ints,
    each likely a cache miss: what made this policy's decision grow with the fleet while its
    bytecodes stayed the same.
    """

    __slots__ = ("_dirty", "_hashes", "_members", "_owners", "_placed", "_shift", "_table", "vnodes")

    def __init__(self, vnodes: int = 128) -> None:
        """Raises ValueError when ``vnodes`` is not positive."""
        if vnodes <= 0:
            raise ValueError(f"vnodes must be positive, got {vnodes}")
        self.vnodes = vnodes
        self._members: dict[str, list[tuple[int, str]]] = {}
        self._hashes = array("Q")
        self._owners: list[str] = []
        self._table = array("I", [0, 0])
        self._shift = 63
        self._placed: set[str] = set()  # ids with points on the ring (members and some who left)
        self._dirty = False

    def __contains__(self, endpoint_id: object) -> bool:
        return endpoint_id in self._members

    def __len__(self) -> int:
        return len(self._members)

    def add(self, endpoint_id: str) -> None:
        """Place ``endpoint_id``'s virtual nodes (no-op if present)."""
        if endpoint_id in self._members:
            return
        self._members[endpoint_id] = [(_hash64(f"{endpoint_id}#{i}"), endpoint_id) for i in range(self.vnodes)]
        if endpoint_id not in self._placed:
            self._dirty = True

    def remove(self, endpoint_id: str) -> None:
        """Take ``endpoint_id``'s virtual nodes off the ring (no-op if absent)."""
        if self._members.pop(endpoint_id, None) is not None and len(self._placed) > 2 * len(self._members) + 8:
            self._dirty = True  # mostly leavers' points: compact at the next walk

    def _settle(self) -> None:
        members = self._members
        points = [p for p in zip(self._hashes, self._owners, strict=True) if p[1] in members]
        present = {o for _, o in points}
        for endpoint_id, own in members.items():
            if endpoint_id not in present:
                points.extend(own)
        points.sort()
        hashes = self._hashes = array("Q", (h for h, _ in points))
        self._owners = [o for _, o in points]
        bits = max(1, len(points).bit_length() - 4)  # about 16 points per table entry
        self._shift = shift = 64 - bits
        self._table = array("I", (bisect.bisect_left(hashes, b << shift) for b in range(1 << bits)))
        self._table.append(len(points))
        self._placed = set(members)
        self._dirty = False

    def walk(self, key: str) -> Iterator[str]:
        """Distinct endpoints in clockwise order starting from ``key``'s position (lazily)."""
        if self._dirty:
            self._settle()
        owners = self._owners
        n = len(owners)
        if n == 0:
            return
        h = _hash64(key)
        b = h >> self._shift
        table = self._table
        start = bisect.bisect_left(self._hashes, h, table[b], table[b + 1])
        seen: set[str] = set()
        members = self._members
        want = len(members)
        for k in range(n):
            owner = owners[(start + k) % n]
            if owner not in seen and owner in members:
                seen.add(owner)
                yield owner
                if len(seen) == want:
                    return


class SessionPolicy:
    """Keeps a session on one replica while that replica is within its load bound.

    1. No ``session_key``: delegates to least load (the Decision still says ``session``).
    2. Otherwise walks the ring from the key; the first candidate whose load
       ``in_flight + waiting`` is below its bound wins.
    Scores of the walked candidates = rank in the walk, plus the number of candidates if
    it was over its bound (the chosen one has the lowest score). The router's candidate
    sets tell the ring who joins and leaves (``on_added`` / ``on_removed``); candidates
    given as a plain list join the ring on sight.
    """

    name = "session"
    needs_prefix = False

    def __init__(self, *, load_factor: float = 1.25, vnodes: int = 128) -> None:
        """``load_factor`` is Mirrokni's ``c``; it must be > 1 for the bound to be usable."""
        if load_factor <= 1.0:
            raise ValueError(f"load_factor must be > 1, got {load_factor}")
        self.load_factor = load_factor
        self._ring = HashRing(vnodes)
        self._ties = RotatingTieBreak()

    def choose(self, request: RouteRequest, candidates: CandidateSet | Sequence[Candidate]) -> Decision:
        """Return the session's replica, or the next one along the ring if it is full."""
        cands = as_candidates(candidates, self._ties)
        if request.session_key is None:
            return self._least(cands)
        ids = cands.ids()
        if ids is not None:
            for endpoint_id in ids:
                self._ring.add(endpoint_id)
        total_load, total_capacity = cands.load_totals()
        budget = self.load_factor * (total_load + 1) / max(total_capacity, 1)
        n = len(cands)
        scores: dict[str, float] = {}
        for endpoint_id in self._ring.walk(request.session_key):
            c = cands.get(endpoint_id)
            if c is None:
                continue
            rank = float(len(scores))
            if c.in_flight + c.waiting < math.ceil(budget * max(c.capacity, 1)):
                scores[endpoint_id] = rank
                return Decision(endpoint_id, self.name, scores)
            scores[endpoint_id] = rank + n
        return self._least(cands)  # unreachable with load_factor > 1; kept as a safe fallback

    def _least(self, cands: CandidateSet) -> Decision:
        best = cands.least_loaded()
        return Decision(best.endpoint_id, self.name, {best.endpoint_id: load_ratio(best)})

    def on_routed(self, request: RouteRequest, endpoint_id: str) -> None:
        """Affinity is a function of the ring; nothing to learn."""

    def on_added(self, endpoint_id: str) -> None:
        """Put the endpoint on the ring."""
        self._ring.add(endpoint_id)

    def on_removed(self, endpoint_id: str) -> None:
        """Take the endpoint off the ring: only its sessions move."""
        self._ring.remove(endpoint_id)
