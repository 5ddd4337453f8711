"""The held-request queue and the router's wait for a replica."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from inferplane.config.models import parse_config
from inferplane.routing.held import HeldQueue, HeldTimeout, NoReplica, QueueFull
from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.routing.router import RouteInfo, Router
from inferplane.runtimes.base import OPENAI_DIALECT


def run(fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(fn(), 10))


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_released_in_arrival_order() -> None:
    async def body() -> None:
        q = HeldQueue(timeout_s=5, max_depth=10)
        order: list[int] = []

        async def wait(i: int) -> None:
            await q.wait(q.ticket("m"))
            order.append(i)

        tasks = [asyncio.ensure_future(wait(i)) for i in range(4)]
        await settle()
        assert q.depth("m") == 4
        assert q.release("m", 2) == 2
        await settle()
        assert order == [0, 1] and q.depth("m") == 2
        q.release("m")
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3] and q.depth("m") == 0

    run(body)


def test_timeout_full_queue_and_client_gone() -> None:
    async def body() -> None:
        q = HeldQueue(timeout_s=0.05, max_depth=2)
        depths: list[int] = []
        q.on_depth(lambda _d, n: depths.append(n))
        with pytest.raises(HeldTimeout) as exc:
            await q.wait(q.ticket("m"))
        assert exc.value.retry_after_header == "1" and q.timeouts_total["m"] == 1
        q.timeout_s = 5
        a = asyncio.ensure_future(q.wait(q.ticket("m")))
        b = asyncio.ensure_future(q.wait(q.ticket("m")))
        await settle()
        with pytest.raises(QueueFull):
            await q.wait(q.ticket("m"))
        assert q.rejected_total["m"] == 1
        a.cancel()  # the client went away: it leaves at once
        await settle()
        assert q.depth("m") == 1
        q.close("m", "the model 'm' is no longer served")
        with pytest.raises(NoReplica, match="no longer served"):
            await b
        assert depths[-1] == 0

    run(body)


def test_router_holds_a_request_until_a_replica_is_ready() -> None:
    async def body() -> None:
        (dep,) = parse_config({"deployments": [{"name": "m", "replicas": 1}]}).deployments
        reg = EndpointRegistry()
        ep = Endpoint(id="m-1", deployment="m", runtime="openai", url="http://127.0.0.1:1", dialect=OPENAI_DIALECT)
        reg.add(ep)
        router = Router(reg, [dep], held=HeldQueue(timeout_s=5, max_depth=10))
        info = RouteInfo("m", None, lambda: "hi")
        assert router.pick(info, set()) is None
        waiting = asyncio.ensure_future(router.wait_pick(info, set()))
        await settle()
        assert not waiting.done() and router.held.depth("m") == 1
        reg.set_ready(ep, True)
        assert (await waiting).endpoint is ep

    run(body)


def test_router_does_not_hold_when_ready_replicas_exist_but_may_not_be_tried() -> None:
    async def body() -> None:
        (dep,) = parse_config({"deployments": [{"name": "m", "replicas": 1}]}).deployments
        reg = EndpointRegistry()
        ep = Endpoint(id="m-1", deployment="m", runtime="openai", url="http://127.0.0.1:1", dialect=OPENAI_DIALECT)
        reg.add(ep)
        reg.set_ready(ep, True)
        router = Router(reg, [dep], held=HeldQueue(timeout_s=5, max_depth=10))
        with pytest.raises(NoReplica) as exc:
            await router.wait_pick(RouteInfo("m", None, lambda: "hi"), {"m-1"})
        assert not isinstance(exc.value, HeldTimeout)

    run(body)
