"""The health checker's round at fleet size: spread over the interval, bounded, prompt for newcomers.

Every endpoint is a path on one real local HTTP server (``http://127.0.0.1:PORT/e17``), so the
server sees which endpoint each probe is for and when it came.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from inferplane.routing.health import HealthChecker
from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.runtimes.base import OPENAI_DIALECT

MODELS = {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "test"}]}


def run(fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(fn(), 30))


class Upstreams:
    """One server standing for many endpoints: ``probes[name]`` is when each of its probes arrived."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.probes: dict[str, list[float]] = defaultdict(list)
        self.in_flight = self.peak = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name, _, rest = request.path.lstrip("/").partition("/")
        if rest == "v1/models":
            self.probes[name].append(asyncio.get_running_loop().time())
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        return web.json_response(MODELS) if rest == "v1/models" else web.Response(text="")


@asynccontextmanager
async def serving(upstreams: Upstreams) -> AsyncIterator[Upstreams]:
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", upstreams.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    upstreams.url = f"http://127.0.0.1:{port}"
    try:
        yield upstreams
    finally:
        await runner.cleanup()


def endpoint(upstreams: Upstreams, i: int) -> Endpoint:
    return Endpoint(id=f"m-{i}", deployment="m", runtime="openai", url=f"{upstreams.url}/e{i}", dialect=OPENAI_DIALECT)


def fleet(upstreams: Upstreams, n: int) -> tuple[EndpointRegistry, list[Endpoint]]:
    registry = EndpointRegistry()
    eps = [endpoint(upstreams, i) for i in range(n)]
    for ep in eps:
        registry.add(ep)
    return registry, eps


async def until(cond: Callable[[], bool], limit_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_a_round_of_200_endpoints_is_spread_over_the_interval_and_checks_every_one() -> None:
    async def main() -> None:
        async with serving(Upstreams()) as up:
            registry, eps = fleet(up, 200)
            checker = HealthChecker(registry, interval_s=1.0)
            checker.start()
            try:
                # the first check of each is at once (all new); the later rounds are paced
                await until(lambda: all(len(up.probes[f"e{i}"]) >= 3 for i in range(200)), limit_s=20)
            finally:
                await checker.stop()
        assert all(ep.ready for ep in eps)
        second = sorted(up.probes[f"e{i}"][1] for i in range(200))
        third = sorted(up.probes[f"e{i}"][2] for i in range(200))
        for checks in (second, third):
            # all at once before: 200 probes within a few ms. Now one every 5 ms over the second.
            assert checks[-1] - checks[0] > 0.5, f"a round's checks span only {checks[-1] - checks[0]:.3f} s"
            busiest = max(sum(1 for t in checks if s <= t < s + 0.1) for s in checks)
            assert busiest <= 80, f"{busiest} of 200 checks in one 100 ms window"
        # each endpoint keeps its place: checked about once per interval, not twice in a round
        gaps = [up.probes[f"e{i}"][2] - up.probes[f"e{i}"][1] for i in range(200)]
        assert min(gaps) > 0.5, f"an endpoint checked again after {min(gaps):.3f} s"

    run(main)


def test_a_small_fleet_is_checked_together_every_interval() -> None:
    async def main() -> None:
        async with serving(Upstreams()) as up:
            registry, eps = fleet(up, 3)
            checker = HealthChecker(registry, interval_s=0.3)
            checker.start()
            try:
                await until(lambda: all(len(up.probes[f"e{i}"]) >= 3 for i in range(3)))
            finally:
                await checker.stop()
        assert all(ep.ready for ep in eps)
        for k in range(3):  # round k probes all three together
            times = [up.probes[f"e{i}"][k] for i in range(3)]
            assert max(times) - min(times) < 0.2, times

    run(main)


def test_an_endpoint_that_joins_is_checked_at_once_and_one_that_leaves_no_more() -> None:
    async def main() -> None:
        async with serving(Upstreams()) as up:
            registry, eps = fleet(up, 40)
            checker = HealthChecker(registry, interval_s=60.0)  # a round far longer than the test
            checker.start()
            try:
                await until(lambda: all(ep.ready for ep in eps))
                newcomer = endpoint(up, 40)
                registry.add(newcomer)
                await until(lambda: newcomer.ready, limit_s=10)  # not at the next round, 60 s away
            finally:
                await checker.stop()

        async with serving(Upstreams()) as up:
            registry, eps = fleet(up, 40)  # 40 slices of one, 50 ms apart
            checker = HealthChecker(registry, interval_s=2.0)
            checker.start()
            try:
                await until(lambda: all(ep.ready for ep in eps))
                registry.remove(eps[-1].id)  # its slice is the round's last
                await until(lambda: all(len(up.probes[f"e{i}"]) >= 2 for i in range(39)), limit_s=15)
            finally:
                await checker.stop()
            assert len(up.probes["e39"]) == 1

    run(main)


def test_checks_in_flight_are_bounded() -> None:
    async def main() -> None:
        async with serving(Upstreams(delay_s=0.05)) as up:
            registry, eps = fleet(up, 50)
            checker = HealthChecker(registry, interval_s=60.0, max_in_flight=5)
            checker.start()
            try:
                await until(lambda: all(ep.ready for ep in eps), limit_s=20)
            finally:
                await checker.stop()
        assert up.peak <= 5, f"{up.peak} requests at once with max_in_flight=5"

    run(main)


def test_check_all_checks_every_endpoint_once_more() -> None:
    async def main() -> None:
        async with serving(Upstreams()) as up:
            registry, eps = fleet(up, 30)
            checker = HealthChecker(registry, interval_s=60.0)
            checker.start()
            try:
                await until(lambda: all(ep.ready for ep in eps))
                await checker.check_all()
            finally:
                await checker.stop()
        assert [len(up.probes[f"e{i}"]) for i in range(30)] == [2] * 30

    run(main)
