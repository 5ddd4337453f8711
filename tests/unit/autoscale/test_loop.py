"""The autoscaler loop over real controllers, a fake backend and a fake clock."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from inferplane.autoscale import Autoscaler, SignalReader
from inferplane.config.models import parse_config
from inferplane.placement.plane import ControlPlane
from inferplane.routing.held import HeldQueue
from inferplane.routing.registry import EndpointRegistry

sys.path.insert(0, str(Path(__file__).parent.parent / "placement"))
from fakes import FakeBackend, FakeClock


def _plane(autoscale: dict[str, Any], replicas: int = 1) -> tuple[ControlPlane, EndpointRegistry, FakeBackend,
                                                                   HeldQueue, Autoscaler, FakeClock]:
    (dep,) = parse_config({"deployments": [{"name": "m", "runtime": "openai", "model": "x", "replicas": replicas,
                                            "autoscale": autoscale}]}).deployments
    reg, backend, clock = EndpointRegistry(), FakeBackend(), FakeClock()
    plane = ControlPlane(registry=reg, backend=backend, ready_timeout_s=30, clock=clock)
    plane.add(dep, run_loop=False)
    held = HeldQueue(timeout_s=30, max_depth=10, clock=clock)
    return plane, reg, backend, held, Autoscaler(plane.controllers, SignalReader(reg, held), clock=clock), clock


def test_load_scales_up_at_once_and_the_decision_is_explained() -> None:
    async def body() -> None:
        plane, reg, backend, _, auto, clock = _plane({"max_replicas": 4, "target_in_flight_per_replica": 2})
        backend.handles[0].become_ready()
        (ep,) = reg.ready("m")
        for _ in range(7):
            reg.acquire(ep)
        auto.tick()
        ctl = plane.controllers["m"]
        assert ctl.desired == 4 and ctl.reason == "autoscaler: load"
        ctl.reconcile()
        assert len(backend.handles) == 4
        status = auto.status()["m"]
        assert status["signals"]["in_flight"] == 7 and status["decision"]["need"] == 4
        assert status["last_change"]["from"] == 1 and status["last_change"]["to"] == 4
        assert auto.decisions[("m", "up", "load")] == 1
        clock.now += 1
        auto.tick()
        assert auto.decisions[("m", "up", "load")] == 1  # no change, no decision counted
        assert [(h["deployment"], h["from"], h["to"], h["reason"]) for h in auto.history] == [("m", 1, 4, "load")]

    asyncio.run(body())


def test_a_request_held_for_a_deployment_at_zero_starts_a_replica_without_waiting_for_a_tick() -> None:
    async def body() -> None:
        plane, reg, backend, held, auto, _ = _plane({"min_replicas": 0, "max_replicas": 2}, replicas=0)
        ctl = plane.controllers["m"]
        assert ctl.desired == 0 and not backend.handles
        waiter = asyncio.ensure_future(held.wait(held.ticket("m")))
        await asyncio.sleep(0)
        assert ctl.desired == 1 and auto.last_change["m"]["reason"] == "held requests"
        ctl.reconcile()
        backend.handles[0].become_ready()
        assert len(reg.ready("m")) == 1
        waiter.cancel()

    asyncio.run(body())


def test_deployments_without_autoscale_are_left_alone() -> None:
    async def body() -> None:
        (dep,) = parse_config({"deployments": [{"name": "m", "runtime": "openai", "model": "x", "replicas": 2}]}).deployments
        reg, clock = EndpointRegistry(), FakeClock()
        plane = ControlPlane(registry=reg, backend=FakeBackend(), ready_timeout_s=30, clock=clock)
        plane.add(dep, run_loop=False)
        auto = Autoscaler(plane.controllers, SignalReader(reg, None), clock=clock)
        auto.tick()
        assert plane.controllers["m"].desired == 2 and auto.status()["m"]["enabled"] is False

    asyncio.run(body())


def test_the_history_of_changes_is_bounded() -> None:
    async def body() -> None:
        plane, reg, backend, _, _, clock = _plane({"max_replicas": 4, "target_in_flight_per_replica": 2})
        auto = Autoscaler(plane.controllers, SignalReader(reg, None), clock=clock, history_size=3)
        backend.handles[0].become_ready()
        (ep,) = reg.ready("m")
        for _ in range(7):
            reg.acquire(ep)
        ctl = plane.controllers["m"]
        for _ in range(6):  # someone lowers the count each time; the load puts it back up
            ctl.set_desired(1, "admin API")
            clock.now += 1
            auto.tick()
        assert ctl.desired == 4
        assert [(h["deployment"], h["from"], h["to"]) for h in auto.history] == [("m", 1, 4)] * 3

    asyncio.run(body())
