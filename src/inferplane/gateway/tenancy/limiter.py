"""Per-tenant limits: requests and tokens per minute, requests in progress.

``admit`` runs once per inference request, after the tenant is known and the request is
valid; ``settle`` once when it ends (the tenant observer calls it from ``finished``).

Tokens: a request is admitted against ``tpm_limit`` with an estimate reserved - its
prompt from its size (``len(body) // 3 + 32``: English runs ~4 bytes a token, CJK ~3,
plus room for a chat template) and its completion from ``max_tokens`` (or
``reserved_completion_tokens``), times ``n``. When it ends the reservation is settled to
what the runtime reported (``usage``); a request that never reached a runtime costs no
tokens; one whose usage is unknown keeps its estimate. Because every admitted request
has taken its estimate before the next is asked about, concurrent requests cannot
overshoot the limit by more than what the runtime used beyond the estimates of the
requests in flight (none when clients set ``max_tokens`` and prompts are estimated high).
There is no spend to go stale: a refund makes the bucket fuller at once.

Requests in progress (``max_concurrent``) are counted in the same store (across gateways
with Redis).

Refusals: 429 ``rate_limit_exceeded`` with ``Retry-After`` (whole seconds) and
``retry-after-ms`` (which the OpenAI SDKs read first); a request that could never fit a
token bucket (its estimate exceeds ``tpm_limit``) is 429 ``request_too_large``, as OpenAI
answers it. Every admitted or refused request carries OpenAI's ``x-ratelimit-*`` headers
for the limits its tenant has.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Literal

from inferplane.gateway.tenancy.gcra import (
    Bucket,
    BucketState,
    LimitStore,
    StoreUnavailable,
    Taken,
)
from inferplane.gateway.tenancy.keys import Tenant

__all__ = ["Limiter", "Reservation", "Verdict", "estimate_tokens", "go_duration"]

log = logging.getLogger(__name__)


def estimate_tokens(body_len: int, max_tokens: int | None, n: int, default_completion: int) -> int:
    """The tokens a request reserves at admission (see the module docstring)."""
    completion = max_tokens if max_tokens is not None and max_tokens > 0 else default_completion
    return body_len // 3 + 32 + completion * max(1, n)


def go_duration(seconds: float) -> str:
    """A duration as OpenAI writes it in ``x-ratelimit-reset-*`` (Go's format): ``0s``, ``12ms``,
    ``1s``, ``6m0s``, ``1m30.5s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    ms = math.ceil(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"


@dataclass(slots=True, eq=False)
class Reservation:
    """What one admitted request holds until it is settled."""

    tenant: Tenant
    tokens: int = 0
    """Reserved against tpm_limit (0: no token limit, or the store was down)."""
    concurrent: bool = False
    """Holds one of the tenant's max_concurrent places."""
    settled: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """Admitted (``reservation`` set) or refused (``status`` 429/503, with code and message)."""

    reservation: Reservation | None
    headers: list[tuple[str, str]]
    status: int = 200
    code: str = ""
    message: str = ""
    limit: str = ""
    """Which limit refused it: ``requests``, ``tokens``, ``concurrency``, ``too_large``, ``store``."""


class Limiter:
    """Admits requests against their tenant's limits, in a ``LimitStore``."""

    def __init__(self, store: LimitStore, *, failure: Literal["open", "closed"] = "open",
                 reserved_completion_tokens: int = 256) -> None:
        self.store = store
        self.failure = failure
        self.reserved_completion_tokens = reserved_completion_tokens
        self.in_progress: collections.Counter[str] = collections.Counter()
        self.store_failures = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._warned = False
        # the in-process store answers at once: call it directly (no coroutine per request)
        self._take_now = getattr(store, "take_now", None)
        self._enter_now = getattr(store, "enter_now", None)

    async def admit(self, tenant: Tenant, *, body_len: int, max_tokens: int | None, n: int = 1) -> Verdict:
        """Admit or refuse one request of ``tenant``; never raises."""
        buckets: list[Bucket] = []
        if tenant.rpm_limit is not None:
            buckets.append(Bucket(f"{tenant.name}:rpm", tenant.rpm_limit, 1))
        tokens = 0
        if tenant.tpm_limit is not None:
            tokens = estimate_tokens(body_len, max_tokens, n, self.reserved_completion_tokens)
            buckets.append(Bucket(f"{tenant.name}:tpm", tenant.tpm_limit, tokens))
        headers: list[tuple[str, str]] = []
        res = Reservation(tenant)
        if buckets:
            try:
                taken = self._take_now(buckets) if self._take_now is not None else await self.store.take(buckets)
            except StoreUnavailable as exc:
                self.store_failures += 1
                if not self._warned:
                    self._warned = True
                    log.warning("%s: rate limits are %s until it answers", exc,
                                "NOT enforced (limits_store_failure: open)" if self.failure == "open"
                                else "refusing requests (limits_store_failure: closed)")
                if self.failure == "closed":
                    return Verdict(None, [("Retry-After", "1")], 503, "limits_unavailable",
                                   "the rate-limit store cannot be reached; try again shortly", "store")
                taken = None
            else:
                self._warned = False
            if taken is not None:
                headers = _headers(tenant, buckets, taken.states)
                if not taken.allowed:
                    return self._refused(tenant, buckets, taken, headers)
                res.tokens = tokens
        if tenant.max_concurrent is not None:
            try:
                key = f"{tenant.name}:conc"
                entered = self._enter_now(key, tenant.max_concurrent) if self._enter_now is not None \
                    else await self.store.enter(key, tenant.max_concurrent)
            except StoreUnavailable as exc:
                self.store_failures += 1
                if self.failure == "closed":
                    self._give_back(tenant, res.tokens, rpm=bool(headers))
                    return Verdict(None, [("Retry-After", "1")], 503, "limits_unavailable",
                                   f"the rate-limit store cannot be reached ({exc}); try again shortly", "store")
                entered = None
            if entered is False:
                self._give_back(tenant, res.tokens, rpm=bool(headers))  # what the rate buckets took
                return Verdict(None, [*headers, ("Retry-After", "1")], 429, "rate_limit_exceeded",
                               f"tenant {tenant.name!r} has {tenant.max_concurrent} requests in progress, its "
                               "max_concurrent; try again when one has finished", "concurrency")
            if entered:
                self.in_progress[tenant.name] += 1
                res.concurrent = True
        return Verdict(res, headers)

    def _refused(self, tenant: Tenant, buckets: Sequence[Bucket], taken: Taken,
                 headers: list[tuple[str, str]]) -> Verdict:
        if taken.too_large is not None:
            b = buckets[taken.too_large]
            return Verdict(None, headers, 429, "request_too_large",
                           f"request too large for tenant {tenant.name!r} on tokens per min (TPM): limit "
                           f"{b.limit}, requested {b.cost} (the prompt estimated from its size plus max_tokens); "
                           "send a shorter prompt or a lower max_tokens", "too_large")
        wait = taken.retry_after_s
        which = "requests" if any(not b.key.endswith(":tpm") and s.remaining < b.cost
                                  for b, s in zip(buckets, taken.states, strict=True)) else "tokens"
        limit = tenant.rpm_limit if which == "requests" else tenant.tpm_limit
        unit = "requests per min (RPM)" if which == "requests" else "tokens per min (TPM)"
        hs = [*headers, ("Retry-After", str(max(1, math.ceil(wait)))), ("retry-after-ms", str(math.ceil(wait * 1000)))]
        return Verdict(None, hs, 429, "rate_limit_exceeded",
                       f"rate limit reached for tenant {tenant.name!r} on {unit}: limit {limit}; "
                       f"try again in {go_duration(wait)}", which)

    def settle(self, res: Reservation, used_tokens: int | None) -> None:
        """End ``res``: give back its concurrency place, and settle its token reservation to
        ``used_tokens`` (None: unknown, the estimate stands). Idempotent; never raises."""
        if res.settled:
            return
        res.settled = True
        name = res.tenant.name
        if res.concurrent:
            left = self.in_progress[name] - 1
            if left > 0:
                self.in_progress[name] = left
            else:
                del self.in_progress[name]
            leave_now = getattr(self.store, "leave_now", None)
            if leave_now is not None:
                leave_now(f"{name}:conc")
            else:
                self._spawn(self.store.leave(f"{name}:conc"), f"{name}:conc")
        if res.tokens and used_tokens is not None and used_tokens != res.tokens:
            self._adjust(f"{name}:tpm", res.tenant.tpm_limit or 1, used_tokens - res.tokens)

    def _give_back(self, tenant: Tenant, tokens: int, *, rpm: bool) -> None:
        if rpm and tenant.rpm_limit is not None:
            self._adjust(f"{tenant.name}:rpm", tenant.rpm_limit, -1)
        if tokens and tenant.tpm_limit is not None:
            self._adjust(f"{tenant.name}:tpm", tenant.tpm_limit, -tokens)

    def _adjust(self, key: str, limit: int, delta: int) -> None:
        now = getattr(self.store, "adjust_now", None)
        if now is not None:  # in-process: at once
            now(key, limit, delta)
            return
        self._spawn(self.store.adjust(key, limit, delta), f"{key} by {delta:+d}")

    def _spawn(self, call: Awaitable[None], what: str) -> None:
        """Run a settlement in the background (observers must not block); owned until ``close``."""
        task = asyncio.ensure_future(self._settle_async(call, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle_async(self, call: Awaitable[None], what: str) -> None:
        try:
            await call
        except StoreUnavailable as exc:
            self.store_failures += 1
            log.warning("could not settle %s: %s", what, exc)

    async def close(self) -> None:
        """Finish pending settlements (briefly), then close the store."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=1.0)
        await self.store.close()


def _headers(tenant: Tenant, buckets: Sequence[Bucket], states: Sequence[BucketState]) -> list[tuple[str, str]]:
    out = []
    for b, s in zip(buckets, states, strict=True):
        kind = "tokens" if b.key.endswith(":tpm") else "requests"
        out += [(f"x-ratelimit-limit-{kind}", str(s.limit)), (f"x-ratelimit-remaining-{kind}", str(s.remaining)),
                (f"x-ratelimit-reset-{kind}", go_duration(s.reset_s))]
    return out
