"""Prefix-cache-aware routing: send a prompt where its prefix is probably cached.

Like SGLang's cache-aware router, but over an approximate index (the gateway does not see
the runtimes' caches), runtime-agnostic (it only uses endpoint ids), and at a cost per
decision that does not grow with the fleet:

1. The index answers, without visiting endpoints, how deep the request's longest cached
   prefix goes anywhere and who holds all of it (``PrefixIndex.longest``).
2. It scores a bounded set of candidates: up to ``holder_sample`` of those holders,
   ``random_sample`` drawn at random, and the least loaded one (every candidate when there are at most
   ``exact_below``): ``matched`` = prefix blocks the index believes the candidate holds;
   ``score = w_load * load_ratio - w_cache * matched/total``.
3. If the best-scoring candidate is badly overloaded compared to the least loaded one
   (``load - min_load > balance_abs_threshold`` and ``load > balance_rel_threshold *
   min_load``, loads in requests per slot), route by least load instead.
4. ``on_routed`` teaches the index that the chosen endpoint now caches the whole prompt;
   ``observe_cached`` corrects it from the ``cached_tokens`` the runtime reported.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from inferplane.routing.policies._load import RotatingTieBreak, as_candidates, load_ratio
from inferplane.routing.prefix import (
    DEFAULT_MAX_BLOCKS,
    PrefixIndex,
    PromptHashes,
    blocks_at,
    checkpoints_within,
)
from inferplane.routing.types import Candidate, CandidateSet, Decision, RouteRequest

__all__ = ["PrefixDecision", "PrefixPolicy"]

_PENDING_LIMIT = 4096
"""Predictions kept for ``observe_cached``; older ones are dropped (never observed)."""


@dataclass(frozen=True, slots=True)
class PrefixDecision(Decision):
    """A Decision that also says how many prompt blocks were predicted cached."""

    matched_blocks: dict[str, int] = field(default_factory=dict)
    """endpoint_id -> predicted cached blocks, for every candidate that was scored."""
    total_blocks: int = 0
    """Blocks of the request the index can know of (up to its last checkpoint)."""
    fell_back: bool = False
    """True when the load-imbalance guard overrode cache locality."""

    @property
    def predicted_blocks(self) -> int:
        """Predicted cached blocks on the chosen endpoint (to compare with observed)."""
        return self.matched_blocks.get(self.endpoint_id, 0)


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
        holder_sample: int = 4,
        random_sample: int = 2,
        exact_below: int = 8,
        seed: int = 0,
    ) -> None:
        """Raises ValueError on negative weights or thresholds, or a non-positive bound."""
        if min(w_load, w_cache, balance_abs_threshold, balance_rel_threshold) < 0:
            raise ValueError("weights and balance thresholds must be >= 0")
        if holder_sample < 1:
            raise ValueError(f"holder_sample must be >= 1, got {holder_sample}")
        self.w_load = w_load
        self.w_cache = w_cache
        self.balance_abs_threshold = balance_abs_threshold
        self.balance_rel_threshold = balance_rel_threshold
        self.holder_sample = holder_sample
        self.random_sample = random_sample
        self.exact_below = exact_below
        self.index = PrefixIndex(max_blocks_per_endpoint)
        self._rng = random.Random(seed)
        self._ties = RotatingTieBreak()
        self._pending: OrderedDict[tuple[str, RouteRequest], int] = OrderedDict()
        self._last: PrefixDecision | None = None

    def _considered(self, cands: CandidateSet, holders: set[str]) -> dict[str, Candidate]:
        n = len(cands)
        k = n if n <= self.exact_below else self.random_sample
        out = {c.endpoint_id: c for c in cands.sample(k, self._rng)}  # k == n: all, in order
        if holders and k < n:
            want = self.holder_sample
            for looked, endpoint_id in enumerate(holders, 1):  # a set: cheap to read the first few of
                c = out.get(endpoint_id) or cands.get(endpoint_id)
                if c is not None:
                    out[endpoint_id] = c
                    want -= 1
                if want == 0 or looked >= 4 * self.holder_sample:
                    break
        if k < n:  # the least loaded one is the balance guard's yardstick
            least = cands.least_loaded(rotate=False)
            out.setdefault(least.endpoint_id, least)
        return out

    def choose(self, request: RouteRequest, candidates: CandidateSet | Sequence[Candidate]) -> PrefixDecision:
        """Return the candidate with the best cache-vs-load score. Requires >= 1 candidate."""
        cands = as_candidates(candidates)  # its least_loaded() must not turn our tie rotation
        hashes = request.prefix_hashes
        depth, holders = self.index.longest(hashes) if hashes else (0, set())
        considered = list(self._considered(cands, holders).values())
        total = blocks_at(len(hashes))
        loads = [load_ratio(c) for c in considered]
        if depth:
            match = self.index.match
            matched = [blocks_at(match(c.endpoint_id, hashes, depth, holders)) for c in considered]
        else:
            matched = [0] * len(considered)
        if total:
            w_load, w_frac = self.w_load, self.w_cache / total
            scores = [w_load * load - w_frac * m for load, m in zip(loads, matched, strict=True)]
        else:
            scores = loads
        best = self._ties.argmin(scores)
        min_load = min(loads)
        best_load = loads[best]
        fell_back = (
            best_load - min_load > self.balance_abs_threshold
            and best_load > self.balance_rel_threshold * min_load
        )
        if fell_back:
            scores = loads
            best = self._ties.argmin(loads)
        decision = PrefixDecision(
            endpoint_id=considered[best].endpoint_id,
            policy=self.name,
            scores={c.endpoint_id: s for c, s in zip(considered, scores, strict=True)},
            matched_blocks={c.endpoint_id: m for c, m in zip(considered, matched, strict=True)},
            total_blocks=total,
            fell_back=fell_back,
        )
        self._last = decision
        return decision

    def on_routed(self, request: RouteRequest, endpoint_id: str) -> None:
        """Record the whole prompt as cached on ``endpoint_id`` and remember the prediction."""
        hashes = request.prefix_hashes
        if not hashes:
            return
        last = self._last
        if last is not None and last.endpoint_id == endpoint_id:
            predicted = last.matched_blocks.get(endpoint_id, 0)
        else:
            predicted = blocks_at(self.index.match(endpoint_id, hashes))
        self._last = None
        key = (endpoint_id, request)
        self.index.insert(endpoint_id, hashes)
        if isinstance(hashes, PromptHashes):
            hashes.freeze()  # the pending prediction must not keep the request body alive
        self._pending[key] = predicted
        self._pending.move_to_end(key)
        if len(self._pending) > _PENDING_LIMIT:
            self._pending.popitem(last=False)

    def observe_cached(self, endpoint_id: str, request: RouteRequest, cached_blocks: int) -> None:
        """Correct the index from what the runtime reported for a request routed here.

        ``cached_blocks`` = the runtime's ``cached_tokens`` converted to this request's
        blocks. If fewer than predicted, the endpoint did not hold what the index claimed
        (it evicted, or it does not cache prefixes): the request's checkpoints past
        ``cached_blocks`` are forgotten for that endpoint. If at least as many, nothing
        changes (``on_routed`` recorded the whole prompt already). Call it once per routed
        request; without a remembered prediction the whole request counts as predicted.
        """
        hashes = request.prefix_hashes
        if not hashes:
            return
        predicted = self._pending.pop((endpoint_id, request), blocks_at(len(hashes)))
        if cached_blocks < predicted:
            self.index.truncate(endpoint_id, hashes, checkpoints_within(cached_blocks))

    def set_capacity(self, endpoint_id: str, blocks: int) -> None:
        """Bound the endpoint's share of the index to ``blocks`` (its runtime's KV capacity)."""
        self.index.set_capacity(endpoint_id, blocks)

    def on_added(self, endpoint_id: str) -> None:
        """A new endpoint starts with an empty cache: nothing to do."""

    def on_removed(self, endpoint_id: str) -> None:
        """Forget the endpoint's cache estimate and pending predictions."""
        self.index.remove(endpoint_id)
        for key in [k for k in self._pending if k[0] == endpoint_id]:
            del self._pending[key]
