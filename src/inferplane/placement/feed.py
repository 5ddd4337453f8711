"""One control plane, many gateways: the primary publishes its replicas, followers mirror them.

Several gateway processes may front the same replicas (``serve --workers N`` on one port,
or one ``serve`` per node or region with ``placement.follow``). Only one of them, the
*primary*, runs the control plane: it launches, supervises, scales and replaces replicas.
The others, *followers*, launch nothing; they learn the primary's launched replicas
(id, deployment, URL, node, region, readiness) from its ``GET /admin/endpoints/feed``, a
long poll in the manner of Ray Serve's controller, whose proxies long-poll it for the
replicas to route to:

1. ``GET /admin/endpoints/feed?after=V`` answers at once with ``{"version", "endpoints"}``
   if the primary's endpoint set or any endpoint's state changed after version ``V``,
   else when the next change happens (at most ``hold_s`` later, with the same version).
2. A follower adds each launched endpoint under the primary's id (ids agree across
   gateways, which is what makes the prefix policy's home ring agree too), mirrors its
   readiness, and drains and removes the ones that left the primary's set.
3. Load is not mirrored: every gateway scrapes each runtime's own ``/metrics`` (running,
   waiting, KV use), so all of them see the same queue signals, and counts its own
   in-flight requests. If the primary goes away, followers keep routing to the last
   replicas they knew, and their own probes take dead ones out of the pool.

Everything runs on the gateway's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from inferplane.config import DeploymentConfig
from inferplane.routing.registry import Endpoint, EndpointRegistry, EndpointState
from inferplane.runtimes.registry import get_adapter

__all__ = ["EndpointFeed", "EndpointFollower"]

log = logging.getLogger(__name__)


class EndpointFeed:
    """The primary's side: a version that moves on every change of its launched endpoints."""

    def __init__(self, registry: EndpointRegistry, *, hold_s: float = 25.0) -> None:
        self.registry = registry
        self.hold_s = hold_s
        self.version = 0
        self._changed = asyncio.Event()
        registry.add_listener(self, loads=False)  # in-flight counts are not published
        registry.on_state(lambda _ep, _was: self._bump())

    def routable_changed(self, endpoint: Endpoint) -> None:
        self._bump()

    def load_changed(self, endpoint: Endpoint) -> None:
        """In-flight counts are each gateway's own: not published (never called: see __init__)."""

    def _bump(self) -> None:
        self.version += 1
        self._changed.set()

    def snapshot(self) -> dict[str, Any]:
        eps = [{"id": e.id, "deployment": e.deployment, "runtime": e.runtime, "url": e.url,
                "metrics_url": e.metrics_url, "node": e.node, "region": e.region, "priority": e.priority,
                "capacity": e.capacity, "ready": e.ready, "state": e.state.value}
               for e in self.registry if e.managed and e.url]
        return {"version": self.version, "endpoints": eps}

    async def wait_newer(self, after: int) -> dict[str, Any]:
        """The snapshot once ``version > after`` (or after ``hold_s``, whichever is first)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.hold_s
        while self.version <= after and loop.time() < deadline:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), deadline - loop.time())
        return self.snapshot()


class EndpointFollower:
    """A follower's side: mirrors the primary's launched endpoints into this gateway's registry."""

    def __init__(self, registry: EndpointRegistry, primary_url: str,
                 deployments: Callable[[], dict[str, DeploymentConfig]], *, retry_s: float = 1.0,
                 headers: dict[str, str] | None = None) -> None:
        self.registry = registry
        self.primary_url = primary_url.rstrip("/")
        self._deployments = deployments
        self.retry_s = retry_s
        self.headers = headers or {}
        self.version = 0
        self.synced = asyncio.Event()
        """Set after the first snapshot was applied."""
        self._mirrored: dict[str, Endpoint] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="endpoint-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60)
        async with aiohttp.ClientSession(timeout=timeout, headers=self.headers) as session:
            warned = False
            while True:
                url = f"{self.primary_url}/admin/endpoints/feed?after={self.version}"
                try:
                    async with session.get(url) as resp:
                        if resp.status != 200:
                            raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status)
                        snap = await resp.json()
                    self.apply(snap)
                    warned = False
                except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                    if not warned:
                        log.warning("cannot follow the primary gateway at %s (%s); keeping the %d endpoint(s) "
                                    "known, retrying", self.primary_url, exc, len(self._mirrored))
                        warned = True
                    await asyncio.sleep(self.retry_s)
                self._reap()

    def apply(self, snap: dict[str, Any]) -> None:
        """Make the mirrored endpoints match one snapshot of the primary's."""
        self.version = int(snap["version"])
        deployments = self._deployments()
        seen: set[str] = set()
        for item in snap["endpoints"]:
            eid, dep = str(item["id"]), deployments.get(str(item["deployment"]))
            if dep is None:
                continue  # a deployment this gateway does not serve
            ep = self._mirrored.get(eid)
            if ep is None:
                if self.registry.get(eid) is not None:
                    log.warning("endpoint id %s of the primary is taken here (the deployment files differ?); "
                                "not mirrored", eid)
                    continue
                ep = Endpoint(id=eid, deployment=dep.name, runtime=dep.runtime, url=str(item["url"]),
                              dialect=get_adapter(dep.runtime).dialect_for(dep),
                              capacity=int(item.get("capacity") or dep.max_concurrent_sequences),
                              managed=True, metrics_url=str(item.get("metrics_url") or ""))
                self.registry.add(ep)
                self._mirrored[eid] = ep
            if ep.state is EndpointState.DRAINING:
                continue
            seen.add(eid)
            ep.url, ep.metrics_url = str(item["url"]), str(item.get("metrics_url") or "")
            ep.node, ep.region, ep.priority = str(item.get("node") or "remote"), item.get("region"), \
                int(item.get("priority") or 0)
            if item.get("state") == EndpointState.DRAINING.value:
                self.registry.set_state(ep, EndpointState.DRAINING)
            elif bool(item.get("ready")) != ep.ready:
                self.registry.set_ready(ep, bool(item.get("ready")))
        for eid, ep in self._mirrored.items():
            if eid not in seen and ep.state is not EndpointState.DRAINING:
                self.registry.set_state(ep, EndpointState.DRAINING)
        self._reap()
        self.synced.set()

    def _reap(self) -> None:
        for eid, ep in list(self._mirrored.items()):
            if ep.state is EndpointState.DRAINING and ep.in_flight == 0:
                self.registry.set_state(ep, EndpointState.STOPPED)
                self.registry.remove(eid)
                del self._mirrored[eid]
