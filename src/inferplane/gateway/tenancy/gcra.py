"""Rate windows as GCRA (the generic cell rate algorithm), and the in-process store.

Why GCRA, not a sliding window: a limit of ``L`` per minute is a bucket of ``L`` that
refills continuously at ``L / 60`` per second. Its whole state is one number per tenant
and limit - the theoretical arrival time ``tat``, the moment the bucket would be full
again - so one atomic read-modify-write admits a request (in Redis: one short Lua
script, no sorted sets, nothing that grows with the rate), settling a reservation is
adding a signed amount to ``tat``, and nothing ever expires into stale spend. The
headers fall out of it exactly: ``remaining = (period - (tat - now)) / T`` and
``reset = tat - now``, "the time until the rate limit resets to its initial state",
which is what OpenAI's own ``x-ratelimit-reset-*`` headers report (they tick in
milliseconds after a single request: a continuously refilling bucket too). The
price: a tenant that has been idle may spend its whole minute at once (a burst of
``L``), so any 60 s window may see up to ``2 L`` - the same as any token bucket.

Per bucket (``T = period / limit``, cost ``c``)::

    base = max(tat, now); new = base + c * T
    admit iff new - now <= period       (else retry after new - now - period)

Several buckets (requests and tokens) are taken together: all of them or none.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["PERIOD_S", "Bucket", "BucketState", "LimitStore", "MemoryStore", "StoreUnavailable", "Taken", "take"]

PERIOD_S = 60.0
"""Every limit is per minute."""


class StoreUnavailable(Exception):
    """The limits store could not be asked (Redis down or too slow); the failure policy decides."""


@dataclass(frozen=True, slots=True)
class Bucket:
    """One limit of one tenant, and what this request costs against it."""

    key: str
    limit: int
    cost: int


@dataclass(frozen=True, slots=True)
class BucketState:
    """A bucket after the request was (or was not) admitted: for the x-ratelimit-* headers."""

    limit: int
    remaining: int
    reset_s: float
    """Seconds until the bucket is full again (0 when it is)."""


@dataclass(frozen=True, slots=True)
class Taken:
    allowed: bool
    states: tuple[BucketState, ...]
    """One per bucket, in the order asked."""
    retry_after_s: float = 0.0
    """When refused: seconds until the request would fit (0 when admitted)."""
    too_large: int | None = None
    """When refused because one request costs more than a whole bucket: that bucket's index."""


def take(tats: Sequence[float | None], buckets: Sequence[Bucket], now: float,
         period_s: float = PERIOD_S) -> tuple[Taken, list[float]]:
    """The pure step: given each bucket's ``tat`` (None: full), admit or refuse the request;
    returns the verdict and the new ``tat`` values (unchanged when refused)."""
    bases, news = [], []
    allowed = True
    retry = 0.0
    too_large = None
    for i, (tat, b) in enumerate(zip(tats, buckets, strict=True)):
        base = now if tat is None or tat < now else tat
        new = base + b.cost * period_s / b.limit
        bases.append(base)
        news.append(new)
        if b.cost > b.limit:
            allowed = False
            too_large = i if too_large is None else too_large
        elif new - now > period_s + 1e-9:
            allowed = False
            retry = max(retry, new - now - period_s)
    after = news if allowed else bases
    states = tuple(_state(a, b.limit, now, period_s) for a, b in zip(after, buckets, strict=True))
    return Taken(allowed, states, 0.0 if allowed else retry, too_large), after


def adjusted(tat: float | None, limit: int, delta: int, now: float, period_s: float = PERIOD_S) -> float | None:
    """``tat`` after ``delta`` tokens were used beyond (or, negative, short of) the reservation;
    None when the bucket is full (nothing to keep)."""
    step = delta * period_s / limit
    if delta >= 0:
        base = now if tat is None or tat < now else tat
        return base + step
    if tat is None:
        return None
    new = tat + step
    return new if new > now else None


def _state(tat: float, limit: int, now: float, period_s: float) -> BucketState:
    used_s = max(0.0, tat - now)
    remaining = max(0, math.floor((period_s - used_s) * limit / period_s + 1e-9))
    return BucketState(limit, min(limit, remaining), used_s)


class LimitStore(Protocol):
    """Where the buckets live. Implementations: ``MemoryStore`` (one gateway), ``RedisStore``."""

    async def take(self, buckets: Sequence[Bucket]) -> Taken:
        """Admit (taking every bucket's cost) or refuse (taking nothing), atomically.
        Raises StoreUnavailable."""
        ...

    async def adjust(self, key: str, limit: int, delta: int) -> None:
        """Settle a reservation: ``delta`` more (or, negative, fewer) than was taken. Raises StoreUnavailable."""
        ...

    async def enter(self, key: str, limit: int) -> bool:
        """Take one of ``limit`` places (requests in progress), or return False when all are
        taken. Raises StoreUnavailable."""
        ...

    async def leave(self, key: str) -> None:
        """Give back a place ``enter`` took. Raises StoreUnavailable."""
        ...

    async def close(self) -> None: ...


class MemoryStore:
    """Buckets in this process (one gateway). Never unavailable; the clock is injectable."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, period_s: float = PERIOD_S) -> None:
        self._tats: dict[str, float] = {}
        self._places: dict[str, int] = {}
        self._clock = clock
        self.period_s = period_s

    def take_now(self, buckets: Sequence[Bucket]) -> Taken:
        tats = self._tats
        taken, after = take([tats.get(b.key) for b in buckets], buckets, self._clock(), self.period_s)
        if taken.allowed:
            for b, t in zip(buckets, after, strict=True):
                tats[b.key] = t
        return taken

    async def take(self, buckets: Sequence[Bucket]) -> Taken:
        return self.take_now(buckets)

    def adjust_now(self, key: str, limit: int, delta: int) -> None:
        new = adjusted(self._tats.get(key), limit, delta, self._clock(), self.period_s)
        if new is None:
            self._tats.pop(key, None)
        else:
            self._tats[key] = new

    async def adjust(self, key: str, limit: int, delta: int) -> None:
        self.adjust_now(key, limit, delta)

    def enter_now(self, key: str, limit: int) -> bool:
        n = self._places.get(key, 0)
        if n >= limit:
            return False
        self._places[key] = n + 1
        return True

    async def enter(self, key: str, limit: int) -> bool:
        return self.enter_now(key, limit)

    def leave_now(self, key: str) -> None:
        n = self._places.get(key, 0) - 1
        if n > 0:
            self._places[key] = n
        else:
            self._places.pop(key, None)

    async def leave(self, key: str) -> None:
        self.leave_now(key)

    async def close(self) -> None:
        return None
