"""Candidate sets kept up to date as endpoints change, so a routing decision visits O(1) of them.

The router registers a :class:`CandidatePools` with the registry. From then on every
routable change (added, removed, ready, unready) moves the endpoint in or out of its
deployment's :class:`Tier` (endpoints grouped by ``(priority, region rank)``), and every
acquire/release re-files its load. A tier keeps:

- ``members`` + ``pos``: an array with O(1) add, swap-remove, random draw and rotation;
- the members bucketed by load (``load_ratio``: an exact float, so equals share a bucket), each
  bucket in filing order, and a min-heap of the loads, built on first use. The least loaded
  member is the first of the lowest bucket, and taking ties in turn moves it to its bucket's
  end (O(1), where a heap of members needed a push and a pop of a 1,000-entry heap per
  decision). A member may be filed below its load (a release re-files at once, an acquire
  does not; a metrics scrape moves loads either way): the first member's load is checked when
  seen and re-filed if it moved, and one member per question is re-filed in turn, so scraped
  loads are never staler than one pass over the tier;
- running totals of outstanding requests and capacity (the session policy's bound).

:class:`TierView` is a tier seen by one request attempt: it implements
``types.CandidateSet`` and skips members the attempt must not use (tried, breaker open).
Skipping is O(1) per member looked at; only if nearly every member is skipped do draws
fall back to one scan of the tier. ``policies._load.CandidateList`` implements the same
protocol over a plain list of candidates (tests, tiny pools).

Event-loop only; not thread-safe.
"""

from __future__ import annotations

import heapq
import random
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from inferplane.routing.types import Candidate

if TYPE_CHECKING:
    from inferplane.routing.registry import Endpoint, EndpointRegistry

__all__ = ["CandidatePools", "Tier", "TierKey", "TierView"]

TierKey = tuple[int, int]
"""``(priority, region rank)``: lower is preferred (see ``routing/tiers.py``)."""
Skip = Callable[[str], bool]
_NONE: list[Tier] = []


def _load(ep: Endpoint) -> float:
    """``max(in_flight, running + waiting) / max(capacity, 1)`` (as ``_load.load_ratio``), in the
    fewest steps: it runs several times per request once a tier keeps its heap."""
    s = ep.stats
    r, w = s.running, s.waiting
    outstanding = ep.in_flight
    if r or w:  # scraped: the runtime's view counts when it is the larger
        q = int(r or 0) + int(w or 0)
        if q > outstanding:
            outstanding = q
    c = ep.capacity
    return outstanding / (c if c > 1 else 1)


class Tier:
    """The routable endpoints of one deployment in one tier (see the module docstring).

    The load buckets are built the first time someone asks for the least loaded member and
    kept from then on; until then a load change costs two dict updates.
    """

    __slots__ = ("_at", "_buckets", "_levels", "_out", "_refresh", "capacity_total", "members",
                 "outstanding_total", "pos")

    def __init__(self) -> None:
        self.members: list[Endpoint] = []
        self.pos: dict[str, int] = {}
        self._buckets: dict[float, OrderedDict[str, Endpoint]] | None = None
        """load -> the members filed under it, in the order they were filed (never empty)."""
        self._levels: list[float] = []
        """A min-heap of the loads that have a bucket; also some that no longer do (dropped
        when they surface, compacted once they outnumber the buckets)."""
        self._at: dict[str, float] = {}  # id -> the load it is filed under
        self._out: dict[str, int] = {}
        self._refresh = 0
        self.outstanding_total = 0
        """Sum over members of ``in_flight + waiting`` as last filed."""
        self.capacity_total = 0

    def __len__(self) -> int:
        return len(self.members)

    def add(self, ep: Endpoint) -> None:
        if ep.id in self.pos:
            return
        self.pos[ep.id] = len(self.members)
        self.members.append(ep)
        self.capacity_total += max(ep.capacity, 1)
        self.moved(ep)  # counted, and filed if the buckets are built (it is filed nowhere yet)

    def remove(self, ep: Endpoint) -> None:
        i = self.pos.pop(ep.id, None)
        if i is None:
            return
        last = self.members.pop()
        if last is not ep:
            self.members[i] = last
            self.pos[last.id] = i
        self._unfile(ep.id)
        self.outstanding_total -= self._out.pop(ep.id, 0)
        self.capacity_total -= max(ep.capacity, 1)

    def moved(self, ep: Endpoint) -> None:
        """``ep``'s in-flight count changed (an acquire or a release): keep the totals, and
        the buckets where its load fell. Where it rose, it stays filed too low, and is
        re-filed when it is the least loaded one's turn (``least_loaded`` checks its load):
        one re-filing per request instead of two."""
        eid = ep.id
        out = ep.in_flight + int(ep.stats.waiting or 0)
        self.outstanding_total += out - self._out.get(eid, 0)
        self._out[eid] = out
        if self._buckets is None:
            return
        at = self._at.get(eid)
        load = _load(ep)
        if at is None or load < at:
            self._file(ep, load)

    def _file(self, ep: Endpoint, load: float) -> None:
        buckets = self._buckets
        assert buckets is not None
        eid = ep.id
        at = self._at.get(eid)
        if at == load:
            return
        if at is not None:
            old = buckets[at]
            del old[eid]
            if not old:
                del buckets[at]
        bucket = buckets.get(load)
        if bucket is None:
            bucket = buckets[load] = OrderedDict()
            levels = self._levels
            heapq.heappush(levels, load)
            if len(levels) > 2 * len(buckets) + 16:  # mostly emptied loads: compact
                self._levels = sorted(buckets)
        bucket[eid] = ep
        self._at[eid] = load

    def _unfile(self, eid: str) -> None:
        at = self._at.pop(eid, None)
        if at is not None and self._buckets is not None:
            old = self._buckets[at]
            del old[eid]
            if not old:
                del self._buckets[at]

    def _build(self) -> dict[float, OrderedDict[str, Endpoint]]:
        self._buckets = {}
        self._at.clear()
        self._levels = []
        for e in self.members:
            self._file(e, _load(e))
        return self._buckets

    def any_member(self, skip: Skip | None) -> Endpoint | None:
        """Some member not skipped, or None: O(1) unless most members are skipped."""
        members = self.members
        n = len(members)
        for step in range(n):
            e = members[(self._refresh + step) % n]
            if skip is None or not skip(e.id):
                return e
        return None

    def least_loaded(self, skip: Skip | None, *, rotate: bool) -> Endpoint | None:
        """The least loaded member not skipped (None if all are); with ``rotate``, it goes
        behind its equals so that exact ties are taken in turn."""
        buckets = self._buckets if self._buckets is not None else self._build()
        members = self.members
        if members:  # re-file one member per question: scraped loads stay fresh
            self._refresh = (self._refresh + 1) % len(members)
            e = members[self._refresh]
            self._file(e, _load(e))
        levels = self._levels
        while levels:
            level = levels[0]
            bucket = buckets.get(level)
            if bucket is None:  # emptied since
                heapq.heappop(levels)
                continue
            ep = next(iter(bucket.values()))
            now = _load(ep)
            if now != level:  # filed too low (acquired since) or moved by a scrape
                self._file(ep, now)
                levels = self._levels  # filing may have compacted it
                continue
            if skip is not None and skip(ep.id):
                return self._least_unskipped(skip, rotate=rotate)
            if rotate:
                bucket.move_to_end(ep.id)
            return ep
        return None

    def _least_unskipped(self, skip: Skip, *, rotate: bool) -> Endpoint | None:
        """``least_loaded`` once the first member it found is skipped: the buckets in order of
        load, each member's load checked; one filed too low is re-filed and the look starts
        again (O(members) at worst: only retries and open breakers are skipped, a few members
        of a large tier)."""
        buckets = self._buckets
        assert buckets is not None
        while True:
            for level in sorted(buckets):
                for ep in list(buckets[level].values()):
                    now = _load(ep)
                    if now != level:
                        self._file(ep, now)
                        break  # the order changed: look again
                    if not skip(ep.id):
                        if rotate:
                            buckets[level].move_to_end(ep.id)
                        return ep
                else:
                    continue
                break
            else:
                return None

    def scan(self, skip: Skip | None) -> list[Endpoint]:
        """Every member not skipped: O(members), only for degenerate cases."""
        return [e for e in self.members if skip is None or not skip(e.id)]


class TierView:
    """One tier as one attempt sees it: ``types.CandidateSet`` minus the skipped members."""

    __slots__ = ("_skip", "tier")

    def __init__(self, tier: Tier, skip: Skip | None) -> None:
        self.tier = tier
        self._skip = skip

    def __len__(self) -> int:
        return len(self.tier.members)

    def sample(self, k: int, rng: random.Random) -> list[Candidate]:
        members, skip = self.tier.members, self._skip
        n = len(members)
        if n <= k:
            return [e.candidate() for e in members if skip is None or not skip(e.id)]
        if k == 2 and skip is None:  # power of two's draw: the loop below's draws, without its dict
            i = int(rng.random() * n)
            j = int(rng.random() * n)
            while j == i:  # 1 in n
                j = int(rng.random() * n)
            return [members[i].candidate(), members[j].candidate()]
        got: dict[str, Endpoint] = {}
        for _ in range(4 * k + 8):
            e = members[int(rng.random() * n)]
            if e.id not in got and (skip is None or not skip(e.id)):
                got[e.id] = e
                if len(got) == k:
                    break
        if len(got) < k:  # nearly all skipped: draw from the usable ones directly
            usable = self.tier.scan(skip)
            return [e.candidate() for e in rng.sample(usable, min(k, len(usable)))]
        return [e.candidate() for e in got.values()]

    def rotate(self, start: int) -> tuple[Candidate, int]:
        members, skip = self.tier.members, self._skip
        n = len(members)
        for step in range(n):
            i = (start + step) % n
            e = members[i]
            if skip is None or not skip(e.id):
                return e.candidate(), i
        raise LookupError("every candidate is skipped")

    def get(self, endpoint_id: str) -> Candidate | None:
        i = self.tier.pos.get(endpoint_id)
        if i is None or (self._skip is not None and self._skip(endpoint_id)):
            return None
        return self.tier.members[i].candidate()

    def least_loaded(self, *, rotate: bool = True) -> Candidate:
        e = self.tier.least_loaded(self._skip, rotate=rotate)
        if e is None:
            raise LookupError("every candidate is skipped")
        return e.candidate()

    def load_totals(self) -> tuple[float, int]:
        return float(self.tier.outstanding_total), self.tier.capacity_total

    def ids(self) -> Sequence[str] | None:
        return None


class CandidatePools:
    """Per deployment, its routable endpoints by tier; a registry listener (see module doc).

    ``on_join`` / ``on_leave`` are called with each endpoint entering or leaving a pool
    (the router forwards them to the deployment's policy).
    """

    def __init__(self, registry: EndpointRegistry, *, preferred_region: str | None = None,
                 on_join: Callable[[Endpoint], None] | None = None,
                 on_leave: Callable[[Endpoint], None] | None = None) -> None:
        self._registry = registry
        self._preferred_region = preferred_region
        self._tiers: dict[str, dict[TierKey, Tier]] = {}
        self._order: dict[str, list[Tier]] = {}
        self._where: dict[str, tuple[str, TierKey, Tier]] = {}
        self._on_join = on_join
        self._on_leave = on_leave
        registry.add_listener(self)
        for ep in registry.endpoints():
            self.routable_changed(ep)

    def key(self, ep: Endpoint) -> TierKey:
        pr = self._preferred_region
        return (ep.priority, 0 if pr is None or ep.region == pr else 1)

    def tiers(self, deployment: str) -> list[Tier]:
        """The deployment's non-empty tiers, best first (do not modify the list)."""
        return self._order.get(deployment, _NONE)

    def size(self, deployment: str) -> int:
        return sum(len(t) for t in self._tiers.get(deployment, {}).values())

    # -- EndpointListener -----------------------------------------------------------------

    def routable_changed(self, endpoint: Endpoint) -> None:
        routable = self._registry.routable(endpoint)
        where = self._where.get(endpoint.id)
        if where is not None and (not routable or where[0] != endpoint.deployment or
                                  where[1] != self.key(endpoint)):
            dep, key, tier = self._where.pop(endpoint.id)
            tier.remove(endpoint)
            if not tier:
                tiers = self._tiers[dep]
                del tiers[key]
                self._order[dep] = [tiers[k] for k in sorted(tiers)]
            if self._on_leave is not None:
                self._on_leave(endpoint)
            where = None
        if routable and where is None:
            key = self.key(endpoint)
            tiers = self._tiers.setdefault(endpoint.deployment, {})
            if key not in tiers:
                tiers[key] = Tier()
                self._order[endpoint.deployment] = [tiers[k] for k in sorted(tiers)]
            tiers[key].add(endpoint)
            self._where[endpoint.id] = (endpoint.deployment, key, tiers[key])
            if self._on_join is not None:
                self._on_join(endpoint)

    def load_changed(self, endpoint: Endpoint) -> None:
        where = self._where.get(endpoint.id)
        if where is not None:
            where[2].moved(endpoint)
