"""The Redis limits store against a real redis-server: atomic across clients, settled, outage."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from inferplane.gateway.tenancy.gcra import Bucket, StoreUnavailable
from inferplane.gateway.tenancy.redis_store import RedisStore
from redis_server import redis_server

pytestmark = pytest.mark.integration
pytest.importorskip("redis")


def test_two_clients_share_one_bucket_exactly(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        async def body() -> None:
            a, b = RedisStore(url, timeout_s=2.0), RedisStore(url, timeout_s=2.0)
            try:
                bucket = [Bucket("t:rpm", 50, 1)]
                results = await asyncio.gather(*[(a if i % 2 else b).take(bucket) for i in range(120)])
                assert sum(r.allowed for r in results) == 50  # not 2 x 50: one bucket for both
                refused = [r for r in results if not r.allowed]
                assert all(0 < r.retry_after_s <= 1.3 for r in refused)  # 60/50 s per request
                # tokens: reserve 400 of 1000, settle to 100 - the other client sees the refund
                tpm = Bucket("t:tpm", 1000, 400)
                assert (await a.take([tpm])).states[0].remaining == 600
                await a.adjust("t:tpm", 1000, -300)
                assert (await b.take([Bucket("t:tpm", 1000, 1)])).states[0].remaining in (899, 900)  # (+ refill meanwhile)
                assert (await b.take([Bucket("t:tpm", 1000, 5000)])).too_large == 0
            finally:
                await a.close()
                await b.close()

        asyncio.run(body())


def test_an_unreachable_store_raises_store_unavailable(tmp_path: Path) -> None:
    from helpers import free_port

    async def body() -> None:
        s = RedisStore(f"redis://127.0.0.1:{free_port()}", timeout_s=0.5)
        try:
            with pytest.raises(StoreUnavailable):
                await s.take([Bucket("t:rpm", 5, 1)])
            with pytest.raises(StoreUnavailable, match="less than"):  # not asked again at once
                await s.take([Bucket("t:rpm", 5, 1)])
            assert s.failures == 1
        finally:
            await s.close()

    asyncio.run(body())


def test_places_in_progress_are_shared_and_a_dead_gateways_come_free(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        async def body() -> None:
            a, b = RedisStore(url, timeout_s=2.0), RedisStore(url, timeout_s=2.0)
            try:
                got = await asyncio.gather(*[(a if i % 2 else b).enter("t:conc", 3) for i in range(8)])
                assert sum(got) == 3
                await a.leave("t:conc")
                assert await b.enter("t:conc", 3) and not await a.enter("t:conc", 3)
                # b "dies": its heartbeat key goes (as it would expire), and its places with it
                await b._redis.delete(b.prefix + "gw:" + b.gateway_id)
                held_by_a = sum(1 for i, ok in enumerate(got) if ok and i % 2) - 1
                free = 3 - held_by_a
                assert sum([await a.enter("t:conc", 3) for _ in range(5)]) == free
            finally:
                await a.close()
                await b.close()

        asyncio.run(body())
