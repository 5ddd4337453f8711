"""The deployment controller on a fake clock and a fake placement backend."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from inferplane.config.models import parse_config
from inferplane.placement.controller import DeploymentController
from inferplane.placement.plane import ControlPlane
from inferplane.routing.held import HeldQueue, HeldTimeout
from inferplane.routing.registry import EndpointRegistry, EndpointState
from inferplane.routing.router import RouteInfo, Router
from inferplane.routing.sessions import RecentSessions

sys.path.insert(0, str(Path(__file__).parent))
from fakes import FakeBackend, FakeClock


def run(fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(fn(), 10))


def deployment(**fields: Any):
    (d,) = parse_config({"deployments": [{"name": "m", "runtime": "openai", "model": "x", **fields}]}).deployments
    return d


def make(clock: FakeClock | None = None, cached: dict[str, int] | None = None, **fields: Any):
    reg = EndpointRegistry()
    backend = FakeBackend()
    clock = clock or FakeClock()
    cached = cached or {}
    ctl = DeploymentController(deployment(**fields), registry=reg, backend=backend, ready_timeout_s=30,
                               cached_blocks=lambda eid: cached.get(eid, 0), clock=clock, sleep=clock.sleep)
    return ctl, reg, backend, clock


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_starts_the_desired_replicas_and_they_take_traffic_once_ready() -> None:
    async def body() -> None:
        ctl, reg, backend, _ = make(replicas=2)
        ctl.start(run_loop=False)
        assert len(backend.handles) == 2 and not reg.ready("m")
        assert [e.state for e in reg.endpoints("m")] == [EndpointState.STARTING] * 2
        backend.handles[0].become_ready()
        assert [e.id for e in reg.ready("m")] == [backend.handles[0].id]
        assert reg.get(backend.handles[0].id).node == "fake-node"
        assert ctl.counts().ready == 1 and ctl.counts().starting == 1
        ctl.reconcile()  # nothing to do: no extra replicas
        assert len(backend.handles) == 2

    run(body)


def test_scale_down_drains_the_cheapest_replica_and_stops_it_only_when_idle() -> None:
    async def body() -> None:
        cached = {}
        ctl, reg, backend, clock = make(cached=cached, replicas=3, drain_timeout_s=30)
        ctl.start(run_loop=False)
        for h in backend.handles:
            h.become_ready()
        a, b, c = (reg.get(h.id) for h in backend.handles)
        release_a = reg.acquire(a)  # a is busy
        cached[b.id] = 50  # b holds a valuable cache; c holds none and is idle: c goes first
        ctl.set_desired(2, "test")
        ctl.reconcile()
        assert c.state is EndpointState.DRAINING and c not in reg.ready("m")
        await settle()
        assert reg.get(c.id) is None and backend.handles[2].stopped

        ctl.set_desired(1, "test")
        ctl.reconcile()  # a has a request in flight, b has none: b goes, despite its cache
        assert b.state is EndpointState.DRAINING and a.state is EndpointState.READY
        await settle()
        ctl.set_desired(0, "test")
        ctl.reconcile()
        assert a.state is EndpointState.DRAINING
        t0 = clock.now
        await settle()
        assert not backend.handles[0].stopped, "stopped with a request in flight"
        release_a()
        await settle()
        assert backend.handles[0].stopped and clock.now - t0 < 30
        assert reg.endpoints("m") == []

    run(body)


def test_a_drain_that_outlasts_drain_timeout_stops_the_replica_anyway() -> None:
    async def body() -> None:
        ctl, reg, backend, clock = make(replicas=1, drain_timeout_s=5)
        ctl.start(run_loop=False)
        backend.handles[0].become_ready()
        reg.acquire(reg.get(backend.handles[0].id))  # never released
        t0 = clock.now
        ctl.set_desired(0, "test")
        ctl.reconcile()
        for _ in range(500):  # each sleep of the drain loop advances the fake clock by 0.05 s
            await asyncio.sleep(0)
        assert backend.handles[0].stopped
        assert 5 <= clock.now - t0 < 6

    run(body)


def test_a_draining_replica_never_comes_back_even_if_its_process_reports_ready() -> None:
    async def body() -> None:
        ctl, reg, backend, _ = make(replicas=1)
        ctl.start(run_loop=False)
        h = backend.handles[0]
        h.become_ready()
        reg.acquire(reg.get(h.id))
        ctl.set_desired(0, "test")
        ctl.reconcile()
        h.crash()
        h.become_ready()  # a restart reported late
        ep = reg.get(h.id)
        assert ep.state is EndpointState.DRAINING and not ep.ready

    run(body)


def test_a_replica_that_fails_for_good_is_replaced_after_a_pause() -> None:
    async def body() -> None:
        ctl, reg, backend, clock = make(replicas=1)
        ctl.start(run_loop=False)
        backend.handles[0].give_up()
        ctl.reconcile()
        await settle()
        assert backend.handles[0].stopped and ctl.last_error and "failed" in ctl.last_error
        ctl.reconcile()
        assert len(backend.handles) == 1, "restarted at once, without a pause"
        clock.now += 6
        ctl.reconcile()
        assert len(backend.handles) == 2
        backend.handles[1].become_ready()
        assert len(reg.ready("m")) == 1

    run(body)


def test_a_replica_whose_node_died_is_replaced_at_once_and_takes_its_nodes_region() -> None:
    async def body() -> None:
        ctl, reg, backend, _clock = make(replicas=1, region="config-region")
        ctl.start(run_loop=False)
        backend.handles[0].become_ready(node="node-a", region="eu")
        (ep,) = reg.ready("m")
        assert (ep.node, ep.region) == ("node-a", "eu"), "the node's region label wins over the config's"
        backend.handles[0].lose_node()
        assert not reg.ready("m"), "out of the pool as soon as the backend says so"
        ctl.reconcile()
        await settle()
        ctl.reconcile()
        assert len(backend.handles) == 2, "a dead node is no crash loop: replaced without the pause"
        backend.handles[1].become_ready(node="node-b")
        (ep,) = reg.ready("m")
        assert (ep.node, ep.region) == ("node-b", "config-region")
        ctl.update(deployment(replicas=1, region="config-region", priority=1))
        assert ep.region == "config-region" and ep.priority == 1

    run(body)


def test_a_backend_that_cannot_place_a_replica_leaves_no_endpoint_and_says_why() -> None:
    async def body() -> None:
        ctl, reg, backend, clock = make(replicas=1)
        backend.refuse = "needs 2 GPU(s) but only 1 of this host's are free"
        ctl.start(run_loop=False)
        assert reg.endpoints("m") == [] and "GPU" in (ctl.last_error or "")
        backend.refuse = None
        clock.now += 6
        ctl.reconcile()
        assert len(reg.endpoints("m")) == 1

    run(body)


def test_a_start_slower_than_the_queue_timeout_answers_held_requests_then_serves_later_ones() -> None:
    async def body() -> None:
        ctl, reg, backend, _ = make(replicas=1)
        held = HeldQueue(timeout_s=0.05, max_depth=10)
        router = Router(reg, [ctl.deployment], held=held)
        ctl.start(run_loop=False)
        info = RouteInfo("m", None, lambda: "hi")
        with pytest.raises(HeldTimeout) as exc:
            await router.wait_pick(info, set())
        assert "within 0.05 s" in str(exc.value) and exc.value.retry_after_header == "1"
        assert held.depth("m") == 0 and held.timeouts_total["m"] == 1
        waiter = asyncio.ensure_future(router.wait_pick(RouteInfo("m", None, lambda: "hi"), set()))
        held.timeout_s = 5
        await settle()
        backend.handles[0].become_ready()
        choice = await waiter
        assert choice.endpoint.id == backend.handles[0].id

    run(body)


def test_reload_while_scaling_replaces_old_replicas_only_once_new_ones_are_ready() -> None:
    async def body() -> None:
        ctl, reg, backend, _ = make(replicas=3)
        ctl.start(run_loop=False)
        old = list(backend.handles)
        old[0].become_ready()  # scaling up: one ready, two still starting
        ctl.update(deployment(replicas=3, extra_args=["--flash-attn"]))  # a launch change
        ctl.reconcile()
        await settle()
        new = backend.handles[3:]
        assert len(new) == 3 and all(h.spec.deployment.extra_args == ("--flash-attn",) for h in new)
        assert old[1].stopped and old[2].stopped, "old replicas still starting should go at once"
        assert not old[0].stopped and reg.get(old[0].id).ready, "the only ready replica must keep serving"
        for h in new[:2]:
            h.become_ready()
        ctl.reconcile()
        await settle()
        assert not old[0].stopped
        new[2].become_ready()
        ctl.reconcile()
        await settle()
        assert old[0].stopped and sorted(e.id for e in reg.ready("m")) == sorted(h.id for h in new)

    run(body)


def test_reload_with_only_scaling_and_routing_changes_keeps_every_replica() -> None:
    async def body() -> None:
        ctl, _reg, backend, _ = make(replicas=2)
        ctl.start(run_loop=False)
        for h in backend.handles:
            h.become_ready()
        ctl.update(deployment(replicas=3, policy="least_load", retry={"max_attempts": 2}))
        ctl.reconcile()
        assert len(backend.handles) == 3 and not any(h.stopped for h in backend.handles)

    run(body)


def test_existing_endpoints_join_and_leave_through_the_plane() -> None:
    async def body() -> None:
        reg = EndpointRegistry()
        plane = ControlPlane(registry=reg, backend=FakeBackend(), ready_timeout_s=30)
        plane.add(deployment(replicas=0, endpoints=[{"url": "http://127.0.0.1:9001"}]), run_loop=False)
        ctl = plane.controllers["m"]
        ep = ctl.add_endpoint("http://127.0.0.1:9002")
        assert {e.url for e in reg.endpoints("m")} == {"http://127.0.0.1:9001", "http://127.0.0.1:9002"}
        assert plane.find(ep.id) is ctl
        task = ctl.remove_endpoint(ep.id)
        assert task is not None
        await task
        assert reg.get(ep.id) is None
        report = plane.apply([deployment(replicas=0, endpoints=[{"url": "http://127.0.0.1:9003"}])])
        assert report.changed == ["m"]
        await settle()
        assert {e.url for e in reg.endpoints("m") if e.state is not EndpointState.DRAINING} == {"http://127.0.0.1:9003"}
        report = plane.apply([])
        assert report.removed == ["m"]
        await asyncio.gather(*report.removals)
        assert reg.endpoints("m") == []

    run(body)


def test_scaled_to_zero_deployment_counts_as_able_to_serve() -> None:
    async def body() -> None:
        reg = EndpointRegistry()
        backend = FakeBackend()
        plane = ControlPlane(registry=reg, backend=backend, ready_timeout_s=30)
        plane.add(deployment(replicas=0, autoscale={"min_replicas": 0, "max_replicas": 2}), run_loop=False)
        assert plane.can_serve("m") and not backend.handles
        fixed = DeploymentController(deployment(replicas=1), registry=EndpointRegistry(), backend=backend,
                                     ready_timeout_s=30)
        fixed.start(run_loop=False)
        assert not fixed.on_demand  # a fixed deployment that is still starting cannot serve yet

    run(body)


def test_a_replica_without_pinned_sessions_goes_before_one_with_them() -> None:
    async def body() -> None:
        sessions = RecentSessions()
        reg = EndpointRegistry()
        backend = FakeBackend()
        ctl = DeploymentController(deployment(replicas=2), registry=reg, backend=backend, ready_timeout_s=30,
                                   pinned_sessions=sessions.pinned)
        ctl.start(run_loop=False)
        for h in backend.handles:
            h.become_ready()
        older, newer = backend.handles
        sessions.seen("alice", newer.id)  # the newer replica has a conversation going; the older none
        ctl.set_desired(1, "test")
        ctl.reconcile()
        assert reg.get(older.id).state is EndpointState.DRAINING and reg.get(newer.id).ready

    run(body)
