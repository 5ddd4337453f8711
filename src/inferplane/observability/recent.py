"""Recent requests per deployment, in time buckets: the dashboard's rolling windows.

``RecentRequests`` is a request observer (``observability/observer.py``). For each
deployment it keeps the last ``window_s`` seconds as a ring of ``bucket_s``-second
buckets; each bucket counts requests and statuses, sums tokens, and counts TTFT, ITL
and end-to-end latencies in log-spaced bins. ``snapshot(now)`` turns the ring into plain data: a dense series (one point per bucket, zeros where nothing happened) for the
plots, and a summary over the last ``summary_s`` seconds (rates, percentiles).

Memory is bounded whatever the traffic: at most ``window_s / bucket_s`` buckets per
deployment; per series in a bucket, one count per occupied bin (bins are 4 % wide from
1 µs to 1e5 s: at most ~470, in practice a few dozen); at most ``max_deployments`` rings
(requests for deployments past that are counted under ``(other)``). Every request is
counted (no sampling); a percentile is the middle of the bin it falls in, within 2 % of
the exact value, and percentiles over several buckets or deployments add their bins. Requests that never
named a deployment (bad JSON, unknown model) are counted under ``(none)``.

What is measured (``time.perf_counter()`` seconds, from the pipeline's record):

- TTFT: ``Outcome.ttft_s``, successful requests only.
- ITL: per streamed request, the mean time between output tokens after the first,
  ``(e2e - ttft) / (completion_tokens - 1)`` (what vLLM's benchmark calls TPOT). The
  observer contract reports the first token, not each chunk, so this is a per-request
  mean, not the spread within a request.
- e2e: ``Outcome.t_end - rec.t_start``, successful requests only.

Hot path: ``finished`` does one dict lookup (the model's current bucket), one status count
and one or two bin counts (a ``math.log`` and a dict update each); the bucket's totals
(requests, ok, errors) are added up from its status counts when read, off the request path.
``benchmarks/recent_observer.py`` measures it. ``started``, ``attempt`` and ``first_token``
do nothing. Runs on the gateway's event loop; not thread-safe.
"""

from __future__ import annotations

import collections
import itertools
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from inferplane.observability.observer import (
    FinishedObserver,
    Outcome,
    RequestRecord,
)

__all__ = ["NO_DEPLOYMENT", "OTHER_DEPLOYMENTS", "RecentRequests", "weighted_percentile", "weighted_percentiles"]

NO_DEPLOYMENT = "(none)"
"""Where requests that never named a served deployment are counted."""
OTHER_DEPLOYMENTS = "(other)"
"""Where requests are counted once ``max_deployments`` rings exist."""

_QUANTILES = (0.5, 0.9, 0.99)


_GROWTH = 1.04
"""Each latency bin is 4 % wider than the one below: a bin's middle is within 2 % of any value in it."""
_MIN_S = 1e-6
_MAX_BIN = math.ceil(math.log(1e5 / _MIN_S) / math.log(_GROWTH))
_INV_LOG_GROWTH = 1.0 / math.log(_GROWTH)
_LOG_MIN = math.log(_MIN_S)
_log = math.log


def _bin(v: float) -> int:
    if v <= _MIN_S:
        return 0
    return min(int((math.log(v) - _LOG_MIN) * _INV_LOG_GROWTH), _MAX_BIN)


def _bin_value(i: int) -> float:
    """The geometric middle of bin ``i``."""
    return _MIN_S * _GROWTH ** (i + 0.5)


class _Histogram:
    """Counts of values by log-spaced bin (see ``_GROWTH``)."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def add(self, v: float) -> None:
        i = int((_log(v) - _LOG_MIN) * _INV_LOG_GROWTH) if v > _MIN_S else 0  # _bin(v), inlined
        if i > _MAX_BIN:
            i = _MAX_BIN
        c = self.counts
        c[i] = c.get(i, 0) + 1

    @property
    def n(self) -> int:
        """Values counted."""
        return sum(self.counts.values())

    def weighted(self) -> list[tuple[float, float]]:
        """(bin value, count) pairs."""
        return [(_bin_value(i), n) for i, n in self.counts.items()]


def _add_counts(total: dict[int, int], counts: dict[int, int]) -> None:
    get = total.get
    for i, n in counts.items():
        total[i] = get(i, 0) + n


@dataclass(slots=True, eq=False)
class _Bucket:
    index: int
    """``int(t // bucket_s)``: which bucket of the clock this is."""
    serial: int
    """Unique per bucket ever made (cache keys)."""
    t_end: float
    """Where the next bucket starts (``(index + 1) * bucket_s``): a request finished before it
    counts here."""
    statuses: dict[int, int] = field(default_factory=dict)
    """Requests by status: the one count ``finished`` keeps (the totals below add it up)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft: _Histogram = field(default_factory=_Histogram)
    itl: _Histogram = field(default_factory=_Histogram)
    e2e: _Histogram = field(default_factory=_Histogram)
    percentiles: tuple[int, dict[str, float | None]] | None = None
    """(requests when computed, the bucket's percentiles): a closed bucket is sorted once."""

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if s < 400)

    @property
    def client_errors(self) -> int:
        """4xx, the gateway's own rejections (400/401/403/404/413/429) and 499 (client gone) among them."""
        return sum(n for s, n in self.statuses.items() if 400 <= s < 500)

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def point_percentiles(self) -> dict[str, float | None]:
        cached = self.percentiles
        if cached is not None and cached[0] == self.requests:
            return cached[1]
        t50, t95 = weighted_percentiles(self.ttft.weighted(), (0.5, 0.95))
        i50, i95 = weighted_percentiles(self.itl.weighted(), (0.5, 0.95))
        out = {"ttft_p50_s": t50, "ttft_p95_s": t95, "itl_p50_s": i50, "itl_p95_s": i95}
        self.percentiles = (self.requests, out)
        return out


def weighted_percentile(pairs: Iterable[tuple[float, float]], q: float) -> float | None:
    """The smallest value whose cumulative weight reaches ``q`` of the total (None if empty)."""
    return weighted_percentiles(pairs, (q,))[0]


def weighted_percentiles(pairs: Iterable[tuple[float, float]], qs: Sequence[float]) -> list[float | None]:
    """``weighted_percentile`` for each of ``qs`` (ascending), with one sort."""
    items = sorted(pairs)
    total = sum(w for _, w in items)
    if not items or total <= 0:
        return [None] * len(qs)
    out: list[float | None] = []
    acc, i = 0.0, 0
    for q in qs:
        target = q * total - 1e-9 * total
        while i < len(items) - 1 and acc + items[i][1] < target:
            acc += items[i][1]
            i += 1
        out.append(items[i][0])
    return out


class RecentRequests(FinishedObserver):
    """The last ``window_s`` seconds of requests per deployment; see the module docstring."""

    def __init__(self, *, window_s: float = 600.0, bucket_s: float = 5.0, summary_s: float = 60.0,
                 max_deployments: int = 256,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if bucket_s <= 0 or window_s < bucket_s:
            raise ValueError(f"need 0 < bucket_s <= window_s (got bucket_s={bucket_s}, window_s={window_s})")
        self.window_s = window_s
        self.bucket_s = bucket_s
        self.summary_s = min(summary_s, window_s)
        self.max_deployments = max_deployments
        self.n_buckets = math.ceil(window_s / bucket_s)
        self._clock = clock
        self._rings: dict[str, collections.deque[_Bucket]] = {}
        self._serials = itertools.count()
        self._merge_cache: dict[str, tuple[tuple[tuple[int, int], ...], tuple[dict[int, int], ...]]] = {}
        self._current: dict[str | None, _Bucket] = {}
        """The newest bucket of each ``rec.model`` seen (None included): ``finished``'s one lookup."""
        self._dropped = 0
        """Requests in buckets that left the window (for ``requests_total``)."""

    @property
    def requests_total(self) -> int:
        """Every request this observer saw finish (never decreases; for 'is it moving' checks)."""
        return self._dropped + sum(b.requests for ring in self._rings.values() for b in ring)

    # -- the observer ----------------------------------------------------------------------

    def finished(self, rec: RequestRecord, outcome: Outcome) -> None:
        # Hot path (every request): one dict lookup, one status count, one latency bin (``_Histogram.add``
        # inlined); the per-bucket totals are added up when read.
        t = outcome.t_end
        b = self._current.get(rec.model)
        if b is None or t >= b.t_end:
            b = self._bucket(rec.model, t)
        status = outcome.status
        statuses = b.statuses
        statuses[status] = statuses.get(status, 0) + 1
        if status >= 400:
            return
        e2e = t - rec.t_start
        i = int((_log(e2e) - _LOG_MIN) * _INV_LOG_GROWTH) if e2e > _MIN_S else 0
        c = b.e2e.counts
        if i > _MAX_BIN:
            i = _MAX_BIN
        c[i] = c.get(i, 0) + 1
        ttft = outcome.ttft_s
        if ttft is not None:
            b.ttft.add(ttft)
        usage = outcome.usage
        if usage is not None:
            ct = usage.completion_tokens or 0
            b.prompt_tokens += usage.prompt_tokens or 0
            b.completion_tokens += ct
            if rec.stream and ttft is not None and ct > 1 and e2e > ttft:
                b.itl.add((e2e - ttft) / (ct - 1))

    def _bucket(self, model: str | None, t: float) -> _Bucket:
        """The bucket ``model``'s request finished at ``t`` counts in (made if new), now its current one."""
        b = self._ring_bucket(model or NO_DEPLOYMENT, t)
        current = self._current
        if len(current) > self.max_deployments:  # names past the bound all count under (other)
            current.clear()
        current[model] = b
        return b

    def _ring_bucket(self, name: str, t: float) -> _Bucket:
        idx = int(t // self.bucket_s)
        ring = self._rings.get(name)
        if ring is None:
            if len(self._rings) >= self.max_deployments and name != OTHER_DEPLOYMENTS:
                return self._ring_bucket(OTHER_DEPLOYMENTS, t)
            ring = self._rings[name] = collections.deque(maxlen=self.n_buckets)
        if ring:
            last = ring[-1]
            if last.index >= idx:  # an earlier t (clock skew) counts in the newest bucket
                return last
            if len(ring) == ring.maxlen:  # the oldest leaves the window as this one comes in
                self._dropped += ring[0].requests
        b = _Bucket(idx, next(self._serials), (idx + 1) * self.bucket_s)
        ring.append(b)
        return b

    # -- reading ---------------------------------------------------------------------------

    def now(self) -> float:
        """The observer's clock (the one ``snapshot`` defaults to)."""
        return self._clock()

    def deployments(self) -> list[str]:
        return list(self._rings)

    def snapshot(self, now: float | None = None) -> dict[str, dict[str, Any]]:
        """Per deployment: ``series`` (one point per bucket of the window, oldest first, each
        ``ago_s`` = how long before ``now`` its bucket started) and ``summary`` over the last
        ``summary_s``. Buckets older than the window are dropped here too."""
        now = self._clock() if now is None else now
        return {name: self._one(ring, now, name) for name, ring in self._rings.items()}

    def summary_all(self, now: float | None = None) -> dict[str, Any]:
        """The summary over every deployment together (counts and latency bins add up)."""
        now = self._clock() if now is None else now
        return self._summary([b for ring in self._rings.values() for b in ring], now, "")

    def _one(self, ring: collections.deque[_Bucket], now: float, name: str) -> dict[str, Any]:
        bs = self.bucket_s
        cur = int(now // bs)
        first = cur - self.n_buckets + 1
        if ring and ring[0].index < first:
            while ring and ring[0].index < first:
                self._dropped += ring.popleft().requests
            self._current.clear()  # a current bucket may have left: finished looks it up again
        by_index = {b.index: b for b in ring}
        series = []
        for idx in range(first, cur + 1):
            b = by_index.get(idx)
            span = bs if idx < cur else max(now - idx * bs, 1.0)  # the current bucket is still filling
            point: dict[str, Any] = {"ago_s": round(now - idx * bs, 3)}
            if b is None:
                point.update(requests=0, rps=0.0, ok=0, errors=0, tokens_per_s=0.0,
                             ttft_p50_s=None, ttft_p95_s=None, itl_p50_s=None, itl_p95_s=None)
            else:
                point.update(
                    requests=b.requests, rps=b.requests / span, ok=b.ok,
                    errors=b.client_errors + b.server_errors, tokens_per_s=b.completion_tokens / span,
                    **b.point_percentiles())
            series.append(point)
        return {"series": series, "summary": self._summary(ring, now, name)}

    def _summary(self, ring: Iterable[_Bucket], now: float, cache_key: str) -> dict[str, Any]:
        bs = self.bucket_s
        since = now - self.summary_s
        recent = [b for b in ring if (b.index + 1) * bs > since]
        requests = sum(b.requests for b in recent)
        statuses: collections.Counter[int] = collections.Counter()
        for b in recent:
            statuses.update(b.statuses)
        oldest = min((b.index for b in recent), default=None)
        span = self.summary_s if oldest is None else min(self.summary_s, max(now - oldest * bs, 1.0))
        out: dict[str, Any] = {
            "window_s": self.summary_s, "requests": requests, "rps": requests / span,
            "ok": sum(b.ok for b in recent),
            "client_errors": sum(b.client_errors for b in recent),
            "server_errors": sum(b.server_errors for b in recent),
            "statuses": {str(s): n for s, n in sorted(statuses.items())},
            "prompt_tokens": sum(b.prompt_tokens for b in recent),
            "completion_tokens": sum(b.completion_tokens for b in recent),
        }
        out["completion_tokens_per_s"] = out["completion_tokens"] / span
        cur = int(now // bs)
        closed = [b for b in recent if b.index < cur]
        for series, counts in zip(("ttft", "itl", "e2e"), self._closed_counts(cache_key, closed), strict=True):
            total = dict(counts)
            for b in recent:
                if b.index >= cur:
                    _add_counts(total, getattr(b, series).counts)
            pairs = [(_bin_value(i), n) for i, n in total.items()]
            for q, v in zip(_QUANTILES, weighted_percentiles(pairs, _QUANTILES), strict=True):
                out[f"{series}_p{round(q * 100)}_s"] = v
        return out

    def _closed_counts(self, cache_key: str, closed: list[_Bucket]) -> tuple[dict[int, int], ...]:
        """The bins of the closed buckets added up per series, kept until the set of buckets
        (or a late request into one of them) changes: most polls add only the current bucket."""
        key = tuple((b.serial, b.requests) for b in closed)
        hit = self._merge_cache.get(cache_key)
        if hit is not None and hit[0] == key:
            return hit[1]
        merged: tuple[dict[int, int], ...] = ({}, {}, {})
        for b in closed:
            _add_counts(merged[0], b.ttft.counts)
            _add_counts(merged[1], b.itl.counts)
            _add_counts(merged[2], b.e2e.counts)
        self._merge_cache[cache_key] = (key, merged)
        return merged
