"""Rate buckets in Redis, shared by every gateway that points at it (``gateway.limits_store``).

The same GCRA step as ``gcra.take``, run inside Redis as a Lua script, so that checking
every bucket and taking from all of them is one atomic step however many gateways ask at
once (Redis runs one script at a time). The clock is Redis's own (``TIME``), so gateways
whose clocks differ still agree. A bucket is one string key holding its ``tat`` (seconds,
as text), expiring once the bucket would be full again: an idle tenant costs nothing.

Settling a reservation is a second script (``adjust``), also atomic. One Redis round trip
per admission and one per settlement; nothing else on the request path.

Requests in progress (``max_concurrent``) are a hash per tenant, one field per gateway
(a random id per process) with its count; a gateway's counts are only believed while its
heartbeat key lives (``_HEARTBEAT_S``), so the places of a gateway that died without
giving them back come free by themselves.

Not for Redis Cluster (the scripts touch one tenant's keys, which may hash to different
slots); one Redis (with a replica for failover) serves any number of gateways.

Needs the ``redis`` package: ``pip install 'inferplane[redis]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Sequence
from typing import Any

from inferplane.gateway.tenancy.gcra import PERIOD_S, Bucket, BucketState, StoreUnavailable, Taken

__all__ = ["RedisStore"]

log = logging.getLogger(__name__)

_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local period = tonumber(ARGV[1])
local n = #KEYS
local base, new = {}, {}
local allowed, retry, too_large = 1, 0, -1
for i = 1, n do
  local limit = tonumber(ARGV[2 * i])
  local cost = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]))
  if tat == nil or tat < now then tat = now end
  base[i] = tat
  new[i] = tat + cost * period / limit
  if cost > limit then
    allowed = 0
    if too_large < 0 then too_large = i - 1 end
  elseif new[i] - now > period + 1e-9 then
    allowed = 0
    if new[i] - now - period > retry then retry = new[i] - now - period end
  end
end
local out = {allowed, tostring(retry), too_large}
for i = 1, n do
  local after = base[i]
  if allowed == 1 then
    after = new[i]
    redis.call('SET', KEYS[i], tostring(after), 'PX', math.ceil((after - now) * 1000) + 1000)
  end
  out[#out + 1] = tostring(after - now)
end
return out
"""

_ADJUST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local period, limit, delta = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]))
local step = delta * period / limit
local new
if delta >= 0 then
  if tat == nil or tat < now then tat = now end
  new = tat + step
else
  if tat == nil then return 0 end
  new = tat + step
end
if new <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], tostring(new), 'PX', math.ceil((new - now) * 1000) + 1000)
end
return 1
"""

_ENTER = """
local total = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local gw, n = all[i], tonumber(all[i + 1])
  if gw == ARGV[2] or redis.call('EXISTS', ARGV[3] .. gw) == 1 then
    total = total + n
  else
    redis.call('HDEL', KEYS[1], gw)
  end
end
if total >= tonumber(ARGV[1]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
redis.call('SET', ARGV[3] .. ARGV[2], '1', 'EX', tonumber(ARGV[4]))
return 1
"""

_LEAVE = """
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return n
"""

_HEARTBEAT_S = 10
"""A gateway's places count while its heartbeat key lives (refreshed every third of this):
places a gateway held when it died are freed within this many seconds."""

_RETRY_CONNECT_S = 1.0
"""After a failure, the store is not asked again for this long (each request would wait for it)."""


class RedisStore:
    """GCRA buckets in one Redis. Raises ``StoreUnavailable`` when Redis cannot answer in ``timeout_s``."""

    def __init__(self, url: str, *, timeout_s: float, prefix: str = "inferplane:rl:",
                 period_s: float = PERIOD_S) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:  # the optional extra is missing
            raise RuntimeError("gateway.limits_store is a Redis URL, and the redis package is not installed: "
                               "pip install 'inferplane[redis]'") from exc
        self._redis: Any = aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                                   health_check_interval=0)
        self._take = self._redis.register_script(_TAKE)
        self._adjust = self._redis.register_script(_ADJUST)
        self._enter = self._redis.register_script(_ENTER)
        self._leave = self._redis.register_script(_LEAVE)
        self.gateway_id = os.urandom(8).hex()
        self._heartbeat: asyncio.Task[None] | None = None
        self._errors: tuple[type[BaseException], ...] = (OSError, TimeoutError, _redis_error())
        self.prefix = prefix
        self.period_s = period_s
        self.url = url
        self._down_until = 0.0
        self.failures = 0
        """Calls that failed (each one decided by the failure policy)."""

    def _check(self) -> None:
        if time.monotonic() < self._down_until:
            raise StoreUnavailable(f"limits store {self.url} failed less than {_RETRY_CONNECT_S:g} s ago")

    def _failed(self, exc: BaseException) -> StoreUnavailable:
        self.failures += 1
        self._down_until = time.monotonic() + _RETRY_CONNECT_S
        return StoreUnavailable(f"limits store {self.url}: {exc}")

    async def take(self, buckets: Sequence[Bucket]) -> Taken:
        self._check()
        args: list[Any] = [self.period_s]
        for b in buckets:
            args += [b.limit, b.cost]
        try:
            out = await self._take(keys=[self.prefix + b.key for b in buckets], args=args)
        except self._errors as exc:
            raise self._failed(exc) from exc
        allowed, retry, too_large = int(out[0]), float(out[1]), int(out[2])
        states = tuple(_state(float(used), b.limit, self.period_s) for used, b in zip(out[3:], buckets, strict=True))
        return Taken(allowed == 1, states, retry, None if too_large < 0 else too_large)

    async def adjust(self, key: str, limit: int, delta: int) -> None:
        self._check()
        try:
            await self._adjust(keys=[self.prefix + key], args=[self.period_s, limit, delta])
        except self._errors as exc:
            raise self._failed(exc) from exc

    async def enter(self, key: str, limit: int) -> bool:
        self._check()
        if self._heartbeat is None:
            self._heartbeat = asyncio.ensure_future(self._beat())
        try:
            ok = await self._enter(keys=[self.prefix + key],
                                   args=[limit, self.gateway_id, self.prefix + "gw:", _HEARTBEAT_S])
        except self._errors as exc:
            raise self._failed(exc) from exc
        return int(ok) == 1

    async def leave(self, key: str) -> None:
        self._check()
        try:
            await self._leave(keys=[self.prefix + key], args=[self.gateway_id])
        except self._errors as exc:
            raise self._failed(exc) from exc

    async def _beat(self) -> None:
        """Keep this gateway's heartbeat key alive while it holds places (owned; cancelled by close)."""
        while True:
            await asyncio.sleep(_HEARTBEAT_S / 3)
            try:
                await self._redis.set(self.prefix + "gw:" + self.gateway_id, "1", ex=_HEARTBEAT_S)
            except self._errors as exc:
                log.warning("limits store %s: heartbeat failed: %s", self.url, exc)

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self._redis.aclose()


def _state(used_s: float, limit: int, period_s: float) -> BucketState:
    used_s = max(0.0, used_s)
    remaining = max(0, math.floor((period_s - used_s) * limit / period_s + 1e-9))
    return BucketState(limit, min(limit, remaining), used_s)


def _redis_error() -> type[BaseException]:
    from redis.exceptions import RedisError

    return RedisError
