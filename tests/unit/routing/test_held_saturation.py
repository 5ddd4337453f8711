"""Holding requests when every replica is full, and letting them go by priority and fairly."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from inferplane.config.models import parse_config
from inferplane.routing.fair import FairOrdering
from inferplane.routing.held import HeldQueue, HeldTimeout
from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.routing.router import RouteInfo, Router
from inferplane.runtimes.base import OPENAI_DIALECT


def run(fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(fn(), 10))


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def _setup(dep: dict[str, Any], *, replicas: int = 1, managed: bool = False, capacity: int = 1,
           timeout_s: float = 5) -> tuple[EndpointRegistry, Router, list[Endpoint]]:
    (d,) = parse_config({"deployments": [{"name": "m", "replicas": 1, **dep}]}).deployments
    reg = EndpointRegistry()
    eps = []
    for i in range(replicas):
        ep = Endpoint(id=f"m-{i}", deployment="m", runtime="openai", url=f"http://127.0.0.1:{i + 1}",
                      dialect=OPENAI_DIALECT, managed=managed, capacity=capacity)
        reg.add(ep)
        reg.set_ready(ep, True)
        eps.append(ep)
    router = Router(reg, [d], held=HeldQueue(timeout_s=timeout_s, max_depth=100, ordering=FairOrdering))
    return reg, router, eps


def test_bound_comes_from_the_setting_else_the_slots_of_launched_replicas() -> None:
    _, router, (ep,) = _setup({"max_concurrent_per_replica": 3}, capacity=8)
    assert router.bound(ep) == 3
    _, router, (ep,) = _setup({}, managed=True, capacity=4)
    assert router.bound(ep) == 4
    _, router, (ep,) = _setup({}, managed=False, capacity=4)
    assert router.bound(ep) is None  # a listed endpoint: its slots are not known


def test_full_replicas_are_skipped_and_then_requests_wait() -> None:
    async def body() -> None:
        reg, router, _eps = _setup({"max_concurrent_per_replica": 1, "policy": "least_load"}, replicas=2)
        info = RouteInfo("m", None, lambda: "hi")
        first = router.pick(info, set())
        assert first is not None
        r1 = reg.acquire(first.endpoint)
        second = router.pick(info, set())
        assert second is not None and second.endpoint is not first.endpoint  # the full one is skipped
        r2 = reg.acquire(second.endpoint)
        assert router.pick(info, set()) is None  # both full
        waiting = asyncio.ensure_future(router.wait_pick(info, set()))
        await settle()
        assert not waiting.done() and router.held.depth("m") == 1
        r1()  # a place is free: the held request takes it
        got = await waiting
        assert got.endpoint is first.endpoint and router.held.depth("m") == 0
        assert router.held.waits[("m", 1, None)].served == 1
        r2()

    run(body)


def test_held_requests_go_by_priority_then_fairly_across_tenants() -> None:
    async def body() -> None:
        reg, router, (ep,) = _setup({"max_concurrent_per_replica": 1})
        busy = reg.acquire(ep)
        order: list[str] = []
        releases = []

        async def client(name: str, tenant: str, priority: int) -> None:
            choice = await router.wait_pick(RouteInfo("m", None, lambda: "hi", tenant=tenant, priority=priority),
                                            set())
            order.append(name)
            releases.append(reg.acquire(choice.endpoint))

        # a low-priority flood, then a normal tenant's burst and another's trickle, then one high
        names = [("flood1", "bulk", 2), ("flood2", "bulk", 2), ("a1", "a", 1), ("a2", "a", 1), ("a3", "a", 1),
                 ("b1", "b", 1), ("urgent", "ops", 0)]
        tasks = []
        for n, t, p in names:
            tasks.append(asyncio.ensure_future(client(n, t, p)))
            await settle()
        assert router.held.depth("m") == len(names)
        assert [t.tenant for t in router.held.held("m")] == ["ops", "a", "b", "a", "a", "bulk", "bulk"]
        busy()
        for _ in names:  # each request, once it has the replica, finishes and frees it
            await settle()
            releases.pop()()
        await asyncio.gather(*tasks)
        assert order == ["urgent", "a1", "b1", "a2", "a3", "flood1", "flood2"]

    run(body)


def test_new_requests_queue_behind_held_ones_and_waits_are_bounded() -> None:
    async def body() -> None:
        reg, router, (ep,) = _setup({"max_concurrent_per_replica": 1}, timeout_s=0.2)
        busy = reg.acquire(ep)
        info = RouteInfo("m", None, lambda: "hi", tenant="t")
        waiting = asyncio.ensure_future(router.wait_pick(info, set()))
        await settle()
        with pytest.raises(HeldTimeout):
            await router.wait_pick(RouteInfo("m", None, lambda: "hi", tenant="u"), set())
        assert router.held.waits[("m", 1, "u")].timeouts == 1
        with pytest.raises(HeldTimeout):
            await waiting
        busy()
        # nothing held any more, and there is room: a new request is not held
        assert router.pick(info, set()) is not None

    run(body)


def test_a_retry_goes_on_to_the_next_replica_even_when_it_is_full() -> None:
    reg, router, (a, b) = _setup({"max_concurrent_per_replica": 1}, replicas=2)
    busy = reg.acquire(b)
    # the first attempt failed on a; b is full: the retry is not held again, it goes to b
    choice = router.pick(RouteInfo("m", None, lambda: "hi"), {a.id})
    assert choice is not None and choice.endpoint is b
    busy()
