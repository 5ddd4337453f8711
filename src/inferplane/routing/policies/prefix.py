"""Prefix-cache-aware routing: send a prompt where its prefix is probably cached.

Like SGLang's cache-aware router, but over an approximate index (the gateway does not see
the runtimes' caches) and runtime-agnostic (it only uses endpoint ids):

1. For each candidate, ``matched`` = longest prefix of the request's blocks the index
   believes the candidate holds; ``score = w_load * load_ratio - w_cache * matched/total``.
2. If the best-scoring candidate is badly overloaded compared to the least loaded one
   (``load - min_load > balance_abs_threshold`` and ``load > balance_rel_threshold *
   min_load``, loads in requests per slot), route by least load instead.
3. ``on_routed`` teaches the index that the chosen endpoint now caches the whole prompt;
   ``observe_cached`` corrects it from the ``cached_tokens`` the runtime reported.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from inferplane.routing.policies._load import RotatingTieBreak, load_ratio
from inferplane.routing.prefix import DEFAULT_MAX_BLOCKS, PrefixIndex
from inferplane.routing.types import Candidate, Decision, RouteRequest

__all__ = ["PrefixDecision", "PrefixPolicy"]

_PENDING_LIMIT = 4096
"""Predictions kept for ``observe_cached``; older ones are dropped (never observed)."""


@dataclass(frozen=True, slots=True)
class PrefixDecision(Decision):
    """A Decision that also says how many prompt blocks were predicted cached."""

    matched_blocks: dict[str, int] = field(default_factory=dict)
    """endpoint_id -> predicted cached blocks, for every candidate."""
    total_blocks: int = 0
    """Blocks in the request (``len(request.prefix_hashes)``)."""
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

    def __init__(
        self,
        *,
        w_load: float = 1.0,
        w_cache: float = 1.0,
        balance_abs_threshold: float = 1.0,
        balance_rel_threshold: float = 1.5,
        max_blocks_per_endpoint: int = DEFAULT_MAX_BLOCKS,
    ) -> None:
        """Raises ValueError on negative weights or thresholds, or a non-positive bound."""
        if min(w_load, w_cache, balance_abs_threshold, balance_rel_threshold) < 0:
            raise ValueError("weights and balance thresholds must be >= 0")
        self.w_load = w_load
        self.w_cache = w_cache
        self.balance_abs_threshold = balance_abs_threshold
        self.balance_rel_threshold = balance_rel_threshold
        self.index = PrefixIndex(max_blocks_per_endpoint)
        self._ties = RotatingTieBreak()
        self._pending: OrderedDict[tuple[str, tuple[int, ...]], int] = OrderedDict()
        self._last: PrefixDecision | None = None

    def choose(self, request: RouteRequest, candidates: Sequence[Candidate]) -> PrefixDecision:
        """Return the candidate with the best cache-vs-load score. Requires >= 1 candidate."""
        hashes = request.prefix_hashes
        total = len(hashes)
        loads = [load_ratio(c) for c in candidates]
        matched = [self.index.match(c.endpoint_id, hashes) for c in candidates]
        matched_by_id = {c.endpoint_id: m for c, m in zip(candidates, matched, strict=True)}
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
            endpoint_id=candidates[best].endpoint_id,
            policy=self.name,
            scores={c.endpoint_id: s for c, s in zip(candidates, scores, strict=True)},
            matched_blocks=matched_by_id,
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
            predicted = self.index.match(endpoint_id, hashes)
        self._last = None
        key = (endpoint_id, hashes)
        self._pending[key] = predicted
        self._pending.move_to_end(key)
        if len(self._pending) > _PENDING_LIMIT:
            self._pending.popitem(last=False)
        self.index.insert(endpoint_id, hashes)

    def observe_cached(self, endpoint_id: str, request: RouteRequest, cached_blocks: int) -> None:
        """Correct the index from what the runtime reported for a request routed here.

        ``cached_blocks`` = the runtime's ``cached_tokens`` converted to this request's
        blocks. If fewer than predicted, the endpoint did not hold what the index claimed
        (it evicted, or it does not cache prefixes): the request's blocks from
        ``cached_blocks`` on are forgotten for that endpoint. If at least as many, the
        first ``cached_blocks`` blocks are refreshed. Call it once per routed request;
        without a remembered prediction the whole request counts as predicted.
        """
        hashes = request.prefix_hashes
        if not hashes:
            return
        predicted = self._pending.pop((endpoint_id, hashes), len(hashes))
        if cached_blocks < predicted:
            self.index.truncate(endpoint_id, hashes, cached_blocks)
        elif cached_blocks > 0:
            self.index.insert(endpoint_id, hashes[: min(cached_blocks, len(hashes))])

    def on_removed(self, endpoint_id: str) -> None:
        """Forget the endpoint's cache estimate and pending predictions."""
        self.index.remove(endpoint_id)
        for key in [k for k in self._pending if k[0] == endpoint_id]:
            del self._pending[key]
