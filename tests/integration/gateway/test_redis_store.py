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
