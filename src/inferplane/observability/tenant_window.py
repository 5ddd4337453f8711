"""Each tenant's requests and tokens over the last minute, as this gateway saw them.

``TenantWindows`` is a request observer for the dashboard's "tenants near their limits":
per tenant (``rec.tenant``) a ring of ``bucket_s`` buckets over ``window_s`` (default 60 s,
the period of ``rpm_limit`` and ``tpm_limit``) counting the requests that got past the
gateway's own checks (served, failed upstream, or cut by the client: not those refused with
a 4xx before routing, which no limit counts either) and the tokens their runtimes reported.

It counts what this gateway saw: with several gateways sharing a limits store, a tenant's
use across all of them is the store's business; the dashboard shows this gateway's share.
Only registered when tenants are configured; requests without a tenant return at once.
Memory: at most ``window_s / bucket_s`` buckets per tenant, at most ``max_tenants`` tenants.
Runs on the event loop; not thread-safe.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from inferplane.observability.observer import (
    FinishedObserver,
    Outcome,
    RequestRecord,
)

__all__ = ["TenantWindows"]

_REFUSED = frozenset({400, 401, 403, 404, 405, 413, 422, 429})
"""Statuses the gateway answers before a request reaches a runtime (not counted as use)."""


@dataclass(slots=True)
class _Bucket:
    index: int
    requests: int = 0
    tokens: int = 0


class TenantWindows(FinishedObserver):
    """Requests and tokens per tenant over the last ``window_s`` seconds; see the module docstring."""

    def __init__(self, *, window_s: float = 60.0, bucket_s: float = 5.0, max_tenants: int = 10_000,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if bucket_s <= 0 or window_s < bucket_s:
            raise ValueError(f"need 0 < bucket_s <= window_s (got bucket_s={bucket_s}, window_s={window_s})")
        self.window_s = window_s
        self.bucket_s = bucket_s
        self.max_tenants = max_tenants
        self._n = math.ceil(window_s / bucket_s)
        self._clock = clock
        self._rings: dict[str, collections.deque[_Bucket]] = {}

    def finished(self, rec: RequestRecord, outcome: Outcome) -> None:
        tenant = rec.tenant
        if tenant is None or outcome.status in _REFUSED:
            return
        idx = int(outcome.t_end // self.bucket_s)
        ring = self._rings.get(tenant)
        if ring is None:
            if len(self._rings) >= self.max_tenants:
                return
            ring = self._rings[tenant] = collections.deque(maxlen=self._n)
        if not ring or ring[-1].index < idx:
            ring.append(_Bucket(idx))
        b = ring[-1]
        b.requests += 1
        u = outcome.usage
        if u is not None:
            b.tokens += u.total_tokens

    def usage(self, now: float | None = None) -> dict[str, tuple[int, int]]:
        """Tenant -> (requests, tokens) over the last ``window_s`` (those with none are left out)."""
        now = self._clock() if now is None else now
        first = int(now // self.bucket_s) - self._n + 1
        out = {}
        for tenant, ring in list(self._rings.items()):
            while ring and ring[0].index < first:
                ring.popleft()
            if not ring:
                del self._rings[tenant]
                continue
            out[tenant] = (sum(b.requests for b in ring), sum(b.tokens for b in ring))
        return out
