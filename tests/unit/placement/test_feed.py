"""The endpoint feed and its follower, over two registries in one process (no HTTP)."""

from __future__ import annotations

import asyncio

from inferplane.config.models import parse_config
from inferplane.placement.feed import EndpointFeed, EndpointFollower
from inferplane.routing.registry import Endpoint, EndpointRegistry, EndpointState
from inferplane.runtimes.base import OPENAI_DIALECT


def test_a_follower_mirrors_the_primarys_launched_replicas_under_their_ids() -> None:
    async def body() -> None:
        (dep,) = parse_config({"deployments": [{"name": "m"}]}).deployments
        primary, mirror = EndpointRegistry(), EndpointRegistry()
        feed = EndpointFeed(primary, hold_s=0.05)
        follower = EndpointFollower(mirror, "http://unused", lambda: {"m": dep})
        eps = [Endpoint(id=f"m-{i}", deployment="m", runtime="embedded", url=f"http://10.0.0.{i}:9000",
                        dialect=OPENAI_DIALECT, managed=True, node=f"node-{i}", region="eu") for i in (1, 2)]
        for ep in eps:
            primary.add(ep)
        primary.add(Endpoint(id="m-9", deployment="m", runtime="openai", url="http://listed:1",
                             dialect=OPENAI_DIALECT, managed=False))
        primary.set_ready(eps[0], True)
        v0 = feed.version
        follower.apply(await feed.wait_newer(0))
        assert [(e.id, e.url, e.node, e.region, e.ready) for e in mirror] == [
            ("m-1", "http://10.0.0.1:9000", "node-1", "eu", True), ("m-2", "http://10.0.0.2:9000", "node-2", "eu", False)]
        assert await feed.wait_newer(feed.version) == feed.snapshot(), "nothing new: answered after hold_s"

        primary.set_ready(eps[1], True)
        primary.remove("m-1")
        assert feed.version > v0
        release = mirror.acquire(mirror.get("m-1"))  # a request still in flight on the leaving one
        follower.apply(await feed.wait_newer(follower.version))
        assert mirror.get("m-2").ready and mirror.get("m-1").state is EndpointState.DRAINING
        release()
        follower.apply(feed.snapshot())
        assert [e.id for e in mirror] == ["m-2"], "removed once its last request finished"

    asyncio.run(body())
