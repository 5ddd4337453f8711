"""Prefix-cache-aware routing: send a prompt where its prefix is probably cached.

Like SGLang's cache-aware router, but over an approximate index (the gateway does not see
the runtimes' caches), runtime-agnostic (it only uses endpoint ids), and at a cost per
decision that does not grow with the fleet:

1. The index answers, without visiting endpoints, how deep the request's longest cached
   prefix goes anywhere and who holds all of it (``PrefixIndex.longest``).
2. It scores a constant number of candidates, whatever the fleet's size or the number of
   holders (every candidate when there are at most ``exact_below``): the least loaded one
   (the candidate set's heap top; ties taken in turn), ``holder_sample`` (2) of those
   holders, a random run of the holders list (so a popular prefix's load spreads over all
   of its holders, not the first few), and ``random_sample`` (0) members drawn at random.
   ``matched`` = prefix blocks the index believes the candidate holds (one lookup for a
   holder of the whole match, a binary search otherwise); ``score = w_load * load_ratio -
   w_cache * matched/total``. Measured in ``benchmarks/routing_sim.py`` at 16 to 1,000
   replicas: the least loaded member matters for the tail (the guard's yardstick, step 3),
   a random one adds nothing there, so none is drawn by default.
3. If the best-scoring candidate is badly overloaded compared to the least loaded one
   (``load - min_load > balance_abs_threshold`` and ``load > balance_rel_threshold *
   min_load``, loads in requests per slot), route by least load instead.
4. ``on_routed`` teaches the index that the chosen endpoint now caches the whole prompt;
   ``observe_cached`` corrects it from the ``cached_tokens`` the runtime reported.
5. Where other gateways route to the same runtimes (``peers_seen``), a prefix the index has
   never seen (not even its first block) goes to its *home*: the first member clockwise from
   the hash of the prompt's leading block on a consistent-hash ring of the routable endpoint
   ids (``HomeRing``), while its load is within ``home_slack`` of the least loaded
   candidate's (else the lowest score wins, as in step 2). Gateways that run side by side
   (``serve --workers``, several ``serve`` over the same replicas) share no index, but they
   share the endpoint ids and the hash, so each sends a new prefix to the same replica, and
   its followers find it cached there: routing stays coherent without a shared database.
   Lookups are O(log n). A home that the index believes holds part of a prefix scores as
   holding at least ``home_share`` of it (the other gateways' turns went there too), so a
   gateway that saw fewer turns of a conversation does not move it for a load difference.
6. A gateway alone in front of its runtimes does not use the ring: there a new prefix is
   best placed by load, and nobody else's turns will follow it. ``peer_share`` tells the two
   apart without configuration: a moving average, over the scored candidates, of how much of
   the runtimes' scraped ``running + waiting`` this gateway's own ``in_flight`` does not
   explain (about 0 alone, -1 with no scrapes, about ``1 - 1/G`` behind G gateways that
   share the traffic); it starts at 1, so until a gateway has seen load it uses the ring.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass

import xxhash

from inferplane.routing.policies._load import RotatingTieBreak, as_candidates, load_ratio
from inferplane.routing.prefix import (
    BLOCKS_AT,
    DEFAULT_MAX_BLOCKS,
    PrefixIndex,
    blocks_at,
    checkpoints_within,
)
from inferplane.routing.types import Candidate, CandidateSet, Decision, RouteRequest

__all__ = ["HomeRing", "PrefixDecision", "PrefixPolicy"]

_NOBODY: tuple[str, ...] = ()

_PEER_ALPHA = 1 / 32
"""Weight of one decision in ``PrefixPolicy.peer_share`` (an exponential moving average)."""


class HomeRing:
    """A consistent-hash ring of endpoint ids: ``home(key, candidates)`` is the first one
    clockwise from ``key`` that is among ``candidates``.

    Every gateway that knows the same ids builds the same ring (xxh3 of the id and a virtual
    node number, ``VNODES`` points per id), so the same key finds the same home everywhere;
    adding or removing an id moves only the keys that id owned. A removed id's points stay on
    the ring (``home`` skips whoever is not a candidate, so they change no answer) until they
    outnumber the members' own: an endpoint that leaves and comes back (a failed probe, a
    restart) costs nothing. A new id marks the ring for one sort at the next ``home``
    (registering 1,000 endpoints is one sort, not 1,000). Pure, not thread-safe.
    """

    VNODES = 32

    __slots__ = ("_dirty", "_members", "_owners", "_placed", "_points")

    def __init__(self) -> None:
        self._members: set[str] = set()
        self._placed: set[str] = set()  # ids with points on the ring (members and some who left)
        self._points: list[int] = []
        self._owners: list[str] = []
        self._dirty = False

    def add(self, endpoint_id: str) -> None:
        self._members.add(endpoint_id)
        if endpoint_id not in self._placed:
            self._dirty = True

    def remove(self, endpoint_id: str) -> None:
        self._members.discard(endpoint_id)
        if len(self._placed) > 2 * len(self._members) + 8:
            self._dirty = True  # mostly leavers' points: compact at the next lookup

    def _settle(self) -> None:
        points = sorted((xxhash.xxh3_64_intdigest(f"{eid}#{v}".encode()), eid)
                        for eid in self._members for v in range(self.VNODES))
        self._points = [p for p, _ in points]
        self._owners = [eid for _, eid in points]
        self._placed = set(self._members)
        self._dirty = False

    def home(self, key: int, candidates: CandidateSet) -> Candidate | None:
        """The home of ``key`` among ``candidates`` (None when no member is a candidate)."""
        if self._dirty:
            self._settle()
        points, owners, members = self._points, self._owners, self._members
        n = len(points)
        start = bisect.bisect_left(points, key)
        for i in range(n):
            owner = owners[(start + i) % n]
            if owner in members:
                c = candidates.get(owner)
                if c is not None:
                    return c
        return None


@dataclass(slots=True)
class PrefixDecision(Decision):
    """A Decision that also says how many prompt blocks were predicted cached."""

    matched: Sequence[int] = ()
    """Predicted cached blocks of every candidate that was scored, in the order of ``scores``."""
    predicted_blocks: int = 0
    """Predicted cached blocks on the chosen endpoint (to compare with observed)."""
    total_blocks: int = 0
    """Blocks of the request the index can know of (up to its last checkpoint)."""
    fell_back: bool = False
    """True when the load-imbalance guard overrode cache locality."""

    @property
    def matched_blocks(self) -> dict[str, int]:
        """endpoint_id -> predicted cached blocks, for every candidate that was scored."""
        return dict(zip(self.scores, self.matched, strict=True))


class PrefixPolicy:
    """Cache-locality routing over a bounded :class:`PrefixIndex`.

    Score = ``w_load * load_ratio - w_cache * matched_fraction`` (lower is better), or just
    ``load_ratio`` when the imbalance guard fell back to least load. Exact ties rotate.
    """

    name = "prefix"
    needs_prefix = True

    def __init__(
        self,
        *,
        w_load: float = 1.0,
        w_cache: float = 1.0,
        balance_abs_threshold: float = 1.0,
        balance_rel_threshold: float = 1.5,
        max_blocks_per_endpoint: int = DEFAULT_MAX_BLOCKS,
        holder_sample: int = 2,
        random_sample: int = 0,
        exact_below: int = 8,
        home_share: float = 1.0,
        home_slack: float = 2.0,
        home_peers: float = 0.2,
        seed: int = 0,
    ) -> None:
        """Raises ValueError on negative weights or thresholds, or a non-positive bound.

        ``home_share``: a prefix's home (step 5) that the index believes holds part of it is
        scored as holding at least this share: other gateways, whose routing this one does not
        see, sent their turns of the same conversation there. 0 turns it off.
        ``home_slack``: a prefix nobody holds goes to its home only while the home's load is
        within this many requests per slot of the least loaded candidate's (the balance
        guard, step 3, still applies).
        ``home_peers``: the ring is used while ``peer_share`` is above this (step 6); 1 or
        more never uses it, a negative value always does.
        """
        if min(w_load, w_cache, balance_abs_threshold, balance_rel_threshold) < 0:
            raise ValueError("weights and balance thresholds must be >= 0")
        if holder_sample < 1 or random_sample < 0:
            raise ValueError(f"holder_sample must be >= 1 and random_sample >= 0, got {holder_sample}, "
                             f"{random_sample}")
        self.w_load = w_load
        self.w_cache = w_cache
        self.balance_abs_threshold = balance_abs_threshold
        self.balance_rel_threshold = balance_rel_threshold
        self.holder_sample = holder_sample
        self.random_sample = random_sample
        self.exact_below = exact_below
        if not 0 <= home_share <= 1:
            raise ValueError(f"home_share must lie in 0..1, got {home_share}")
        self.home_share = home_share
        self.home_slack = home_slack
        self.home_peers = home_peers
        self.peer_share = 1.0
        """Moving average of ``(sum(running + waiting) - sum(in_flight)) / max(both)`` over
        the scored candidates of each decision, -1..1 (see step 6 of the module doc). It
        starts by assuming other gateways, and an idle fleet teaches it nothing: a gateway
        that joins others (or sees only one request at a time) routes coherently at once; a
        lone one learns that it is alone within a few dozen decisions under load."""
        self.index = PrefixIndex(max_blocks_per_endpoint)
        self._rng = random.Random(seed)
        self._ties = RotatingTieBreak()
        self._last: PrefixDecision | None = None
        self.ring = HomeRing()

    def _considered(self, cands: CandidateSet, holders: Sequence[str]) -> list[Candidate]:
        """The candidates to score (step 2 of the module docstring): every one of a small set;
        else a constant number, whatever the fleet's size or the number of holders."""
        n = len(cands)
        rng = self._rng
        if n <= self.exact_below:
            return cands.sample(n, rng)  # all, in order
        least = cands.least_loaded()  # also the balance guard's yardstick; equals taken in turn
        if least is None:  # cannot happen with n > exact_below >= 0 members
            return []
        out = [least]
        seen = [least.endpoint_id]
        if self.random_sample:
            for c in cands.sample(self.random_sample, rng):
                if c.endpoint_id not in seen:
                    out.append(c)
                    seen.append(c.endpoint_id)
        m = len(holders)
        if m:
            get = cands.get
            want = self.holder_sample
            start = int(rng.random() * m)  # a random run of holders: load spreads over all of them
            for i in range(start, start + min(m, 2 * want + 2)):
                endpoint_id = holders[i % m]
                if endpoint_id not in seen:
                    held = get(endpoint_id)
                    if held is not None:
                        out.append(held)
                        seen.append(endpoint_id)
                        want -= 1
                        if want == 0:
                            break
        return out

    def peers_seen(self) -> bool:
        """Whether other gateways (or clients) appear to send these runtimes part of their work."""
        return self.peer_share > self.home_peers

    def choose(self, request: RouteRequest, candidates: CandidateSet | Sequence[Candidate]) -> PrefixDecision:
        """Return the candidate with the best cache-vs-load score. Requires >= 1 candidate."""
        cands = as_candidates(candidates)  # its least_loaded() must not turn our tie rotation
        hashes = request.prefix_hashes
        index = self.index
        depth, holders = index.longest(hashes) if hashes else (0, _NOBODY)
        considered = self._considered(cands, holders)
        ids = []
        loads = []
        mine = theirs = 0
        for c in considered:  # load_ratio, inline: one pass over the few candidates
            ids.append(c.endpoint_id)
            out = c.running + c.waiting
            mine += c.in_flight
            theirs += out
            loads.append((c.in_flight if c.in_flight > out else out) / (c.capacity if c.capacity > 1 else 1))
        if mine or theirs:  # an idle fleet says nothing either way (step 6)
            self.peer_share += ((theirs - mine) / max(mine, theirs) - self.peer_share) * _PEER_ALPHA
        home_at = -1
        if hashes and self.peer_share > self.home_peers:
            home = self.ring.home(hashes[0], cands)
            if home is not None:
                if home.endpoint_id in ids:
                    home_at = ids.index(home.endpoint_id)
                else:
                    home_at = len(ids)
                    ids.append(home.endpoint_id)
                    loads.append(load_ratio(home))
        total = BLOCKS_AT[len(hashes)]
        if depth:
            matched = list(map(BLOCKS_AT.__getitem__, index.matches(ids, hashes, depth)))
            credit = matched
            if home_at >= 0 and self.home_share and 0 < matched[home_at] < self.home_share * total:
                credit = list(matched)  # other gateways sent the rest of it there too (step 5)
                credit[home_at] = int(self.home_share * total)
            w_load, w_frac = self.w_load, self.w_cache / total
            scores = [w_load * load - w_frac * m for load, m in zip(loads, credit, strict=True)]
        else:
            matched = [0] * len(ids)
            scores = [self.w_load * load for load in loads] if total else loads
        ties = self._ties
        best = ties.argmin(scores)
        if home_at >= 0 and not depth and loads[home_at] - loads[best] <= self.home_slack:
            best = home_at  # a prefix nobody holds: its home on the ring, as load allows
        min_load = min(loads)
        best_load = loads[best]
        fell_back = (
            best_load - min_load > self.balance_abs_threshold
            and best_load > self.balance_rel_threshold * min_load
        )
        if fell_back:
            scores = loads
            best = ties.argmin(loads)
        decision = PrefixDecision(ids[best], self.name, dict(zip(ids, scores, strict=True)), matched, matched[best],
                                  total, fell_back)
        self._last = decision
        return decision

    def on_routed(self, request: RouteRequest, endpoint_id: str) -> None:
        """Record the whole prompt as cached on ``endpoint_id``."""
        hashes = request.prefix_hashes
        if not hashes:
            return
        last = self._last
        self._last = None
        if last is not None and last.endpoint_id == endpoint_id:
            held = checkpoints_within(last.predicted_blocks)
        else:
            held = self.index.match(endpoint_id, hashes)
        self.index.insert(endpoint_id, hashes, held=held)

    def observe_cached(self, endpoint_id: str, request: RouteRequest, cached_blocks: int,
                       predicted_blocks: int | None = None) -> None:
        """Correct the index from what the runtime reported for a request routed here.

        ``cached_blocks`` = the runtime's ``cached_tokens`` converted to this request's
        blocks; ``predicted_blocks`` = what the decision predicted cached there (the router
        keeps it with its choice; None: the whole request counts as predicted). If fewer were
        cached than predicted, the endpoint did not hold what the index claimed (it evicted,
        or it does not cache prefixes): the request's checkpoints past ``cached_blocks`` are
        forgotten for that endpoint. If at least as many, nothing changes (``on_routed``
        recorded the whole prompt already).
        """
        hashes = request.prefix_hashes
        if not hashes:
            return
        predicted = blocks_at(len(hashes)) if predicted_blocks is None else predicted_blocks
        if cached_blocks < predicted:
            self.index.truncate(endpoint_id, hashes, checkpoints_within(cached_blocks))

    def set_capacity(self, endpoint_id: str, blocks: int) -> None:
        """Bound the endpoint's share of the index to ``blocks`` (its runtime's KV capacity)."""
        self.index.set_capacity(endpoint_id, blocks)

    def on_added(self, endpoint_id: str) -> None:
        """A new endpoint starts with an empty cache; it takes its share of the ring."""
        self.ring.add(endpoint_id)

    def on_removed(self, endpoint_id: str) -> None:
        """Forget the endpoint's cache estimate and ring share."""
        self.ring.remove(endpoint_id)
        self.index.remove(endpoint_id)
