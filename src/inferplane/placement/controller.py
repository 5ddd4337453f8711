"""The deployment controller: one per deployment, the only writer of placement state.

It holds the deployment's desired replica count (from the config, the admin API or the
autoscaler) and makes what runs match it:

1. ``reconcile()`` compares desired with the replicas that are starting or ready and
   are of the current launch config; too few -> ``backend.start`` more (all at once);
   too many -> the cheapest to lose (``choose_victims``) are drained.
2. Draining: the endpoint moves to DRAINING (routing stops sending it requests, its
   sessions move to their next owner on the ring), the requests it has in flight finish
   (at most ``drain_timeout_s``), then ``handle.stop`` and the endpoint is removed.
3. A changed launch config (reload with another model, runtime, arguments...) bumps a
   revision: replicas of the old revision are drained once enough new ones are ready, so
   capacity never drops below what is wanted; changes that do not need a restart
   (replicas, autoscale, routing, retries) leave running replicas alone.
4. Existing endpoints (``endpoints:`` in the file, or added through the admin API) are
   registered as they are and drained on removal; they are never started or stopped.

Reconciling runs in the controller's task (woken on every change, and each second);
drains run as tasks the controller owns. Everything runs on the gateway's event loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from inferplane.config import DeploymentConfig
from inferplane.placement.backend import (
    PlacementBackend,
    PlacementError,
    ReplicaAddress,
    ReplicaHandle,
    ReplicaSpec,
)
from inferplane.placement.victims import VictimFacts, choose_victims
from inferplane.routing.registry import Endpoint, EndpointRegistry, EndpointState
from inferplane.runtimes.base import Resources
from inferplane.runtimes.registry import get_adapter

__all__ = ["NON_LAUNCH_FIELDS", "DeploymentController", "ReplicaCounts", "same_launch"]

log = logging.getLogger(__name__)

NON_LAUNCH_FIELDS = frozenset({
    "replicas", "autoscale", "endpoints", "policy", "fallback", "retry", "breaker", "saturation",
    "drain_timeout_s", "ready_timeout_s", "region", "priority", "api_key_env",
})
"""Deployment fields a running replica does not depend on: changing them restarts nothing."""


def same_launch(a: DeploymentConfig, b: DeploymentConfig) -> bool:
    """True if replicas launched for ``a`` also serve ``b`` (only non-launch fields differ)."""
    return a.model_dump(exclude=set(NON_LAUNCH_FIELDS)) == b.model_dump(exclude=set(NON_LAUNCH_FIELDS))


@dataclass(frozen=True, slots=True)
class ReplicaCounts:
    desired: int
    starting: int
    ready: int
    draining: int
    external: int


@dataclass(slots=True, eq=False)
class _Replica:
    endpoint: Endpoint
    handle: ReplicaHandle | None
    rev: int
    seq: int


Sleep = Callable[[float], Awaitable[None]]


class DeploymentController:
    def __init__(self, deployment: DeploymentConfig, *, registry: EndpointRegistry, backend: PlacementBackend,
                 ready_timeout_s: float, cached_blocks: Callable[[str], int] = lambda _id: 0,
                 pinned_sessions: Callable[[str], int] = lambda _id: 0,
                 clock: Callable[[], float] = time.monotonic, sleep: Sleep = asyncio.sleep,
                 retry_after_failure_s: float = 5.0) -> None:
        self.deployment = deployment
        self.registry = registry
        self.backend = backend
        self.ready_timeout_s = ready_timeout_s
        self.desired = deployment.replicas
        self.reason = "config"
        self.last_error: str | None = None
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=50)
        self._cached_blocks = cached_blocks
        self._pinned_sessions = pinned_sessions
        self._clock = clock
        self._sleep = sleep
        self._retry_after_failure_s = retry_after_failure_s
        self._no_start_before = 0.0
        self._rev = 0
        self._seq = itertools.count()
        self._replicas: dict[str, _Replica] = {}
        self._node_region: dict[str, str] = {}
        """Replica id -> the region label of the node it runs on (cluster backends)."""
        self._external: dict[str, Endpoint] = {}
        self._drains: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.initial: list[ReplicaHandle] = []
        """Handles of the replicas started by ``start()`` (``serve`` reports their readiness)."""
        self.ever_ready = False

    @property
    def on_demand(self) -> bool:
        """Scaled to zero (or on its way back) by design: a request starts a replica.

        True for an autoscaled deployment with ``min_replicas: 0`` once it served (or when
        it started with no replica): ``/ready`` counts it as able to serve meanwhile.
        """
        a = self.deployment.autoscale
        return a is not None and a.min_replicas == 0 and (self.ever_ready or not self.initial)

    @property
    def name(self) -> str:
        return self.deployment.name

    # -- life ----------------------------------------------------------------------------

    def start(self, *, run_loop: bool = True) -> None:
        """Register the config's endpoints, start the first replicas, and (by default) the loop."""
        for target in self.deployment.endpoints:
            self.add_endpoint(target.url, region=target.region, priority=target.priority)
        self.reconcile()
        self.initial = [r.handle for r in self._replicas.values() if r.handle is not None]
        if run_loop:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._loop(), name=f"controller-{self.name}")

    async def _loop(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            try:
                self.reconcile()
            except Exception:  # a bug here must not stop the deployment being managed
                log.exception("reconciling %s failed", self.name)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def stop(self, drain_timeout_s: float | None = None) -> None:
        """Drain every endpoint (at most ``drain_timeout_s`` each, concurrently) and stop every replica."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        timeout = self.deployment.drain_timeout_s if drain_timeout_s is None else drain_timeout_s
        for r in list(self._replicas.values()):
            if r.endpoint.state is not EndpointState.DRAINING:
                self._drain(r, timeout)
        for ep in list(self._external.values()):
            self._drain_external(ep, timeout)
        while self._drains:
            await asyncio.gather(*list(self._drains), return_exceptions=True)

    # -- what the admin API, the autoscaler and reload call --------------------------------

    def set_desired(self, n: int, reason: str) -> None:
        """Run ``n`` replicas from now on (clamped to 0..64)."""
        n = max(0, min(64, n))
        if n != self.desired:
            self._event("desired", f"{self.desired} -> {n} ({reason})")
        self.desired, self.reason = n, reason
        self._kick()

    def update(self, deployment: DeploymentConfig, *, endpoints: bool = True) -> None:
        """Apply a reloaded config of this deployment (same name). ``endpoints=False``: leave the
        existing endpoints as they are (an admin change of other fields: the endpoints that joined
        through the admin API are not in ``deployment.endpoints`` and must stay)."""
        old = self.deployment
        self.deployment = deployment
        if not same_launch(old, deployment):
            self._rev += 1
            self._event("config", f"launch config changed (revision {self._rev}): replicas will be replaced")
        if deployment.autoscale is None or old.autoscale is None:
            self.set_desired(deployment.replicas, "config")
        elif not deployment.autoscale.min_replicas <= self.desired <= deployment.autoscale.max_replicas:
            a = deployment.autoscale
            self.set_desired(min(max(self.desired, a.min_replicas), a.max_replicas), "config bounds")
        for r in self._replicas.values():
            r.endpoint.region = self._node_region.get(r.endpoint.id, deployment.region)
            r.endpoint.priority = deployment.priority
        if not endpoints:
            self._kick()
            return
        want = {t.url: t for t in deployment.endpoints}
        have = {ep.url: ep for ep in self._external.values() if ep.state is not EndpointState.DRAINING}
        for url, target in want.items():
            if url not in have:
                self.add_endpoint(url, region=target.region, priority=target.priority)
            else:
                have[url].region, have[url].priority = target.region, target.priority
        for url, ep in have.items():
            if url not in want:
                self._drain_external(ep, deployment.drain_timeout_s)
        self._kick()

    def add_endpoint(self, url: str, *, region: str | None = None, priority: int = 0) -> Endpoint:
        """An endpoint that already runs joins the pool (the health checker makes it ready)."""
        dep = self.deployment
        ep = Endpoint(
            id=self.registry.new_id(dep.name), deployment=dep.name, runtime=dep.runtime, url=url,
            dialect=get_adapter(dep.runtime).dialect_for(dep), capacity=dep.max_concurrent_sequences,
            region=region, priority=priority, managed=False, node="external",
            upstream_model=dep.upstream_model or "",
        )
        self.registry.add(ep)
        self._external[ep.id] = ep
        self._event("added", f"{ep.id} at {url}")
        return ep

    def owns(self, endpoint_id: str) -> bool:
        return endpoint_id in self._replicas or endpoint_id in self._external

    def remove_endpoint(self, endpoint_id: str) -> asyncio.Task[None] | None:
        """Drain and remove one endpoint. A launched replica is replaced (the desired count
        stays: lower it to shrink); an existing one leaves the pool. Returns the drain task."""
        if endpoint_id in self._external:
            return self._drain_external(self._external[endpoint_id], self.deployment.drain_timeout_s)
        r = self._replicas.get(endpoint_id)
        if r is None or r.endpoint.state is EndpointState.DRAINING:
            return None
        task = self._drain(r, self.deployment.drain_timeout_s)
        self._kick()
        return task

    def counts(self) -> ReplicaCounts:
        starting = ready = draining = 0
        for r in self._replicas.values():
            s = r.endpoint.state
            if s is EndpointState.DRAINING:
                draining += 1
            elif r.endpoint.ready:
                ready += 1
            elif s is not EndpointState.STOPPED:
                starting += 1
        external = sum(1 for e in self._external.values() if e.state is not EndpointState.DRAINING)
        return ReplicaCounts(self.desired, starting, ready, draining, external)

    # -- reconciling ---------------------------------------------------------------------

    def reconcile(self) -> None:
        """One step towards the desired count (synchronous; drains continue as tasks)."""
        if self._stopping:
            return
        self._reap_failed()
        active = [r for r in self._replicas.values()
                  if r.endpoint.state not in (EndpointState.DRAINING, EndpointState.STOPPED)]
        fresh = [r for r in active if r.rev == self._rev]
        stale = [r for r in active if r.rev != self._rev]
        missing = self.desired - len(fresh)
        if missing > 0 and self._clock() >= self._no_start_before:
            for _ in range(missing):
                if not self._start_one():
                    break
        ready_fresh = sum(1 for r in fresh if r.endpoint.ready)
        for r in stale:  # replace old revisions once the new ones can carry the load
            if not r.endpoint.ready or ready_fresh >= self.desired:
                self._drain(r, self.deployment.drain_timeout_s)
        excess = len(fresh) - self.desired
        if excess > 0:
            facts = [VictimFacts(r.endpoint.id, r.endpoint.ready, r.endpoint.in_flight,
                                 self._cached_blocks(r.endpoint.id), r.seq, self._pinned_sessions(r.endpoint.id))
                     for r in fresh]
            for eid in choose_victims(facts, excess):
                self._drain(self._replicas[eid], self.deployment.drain_timeout_s)

    def _reap_failed(self) -> None:
        for r in list(self._replicas.values()):
            if r.handle is not None and r.handle.failed and r.endpoint.state is not EndpointState.DRAINING:
                self.last_error = f"replica {r.endpoint.id} failed and will not be restarted; starting another"
                self._event("failed", r.endpoint.id)
                self._drain(r, 0.0)
                if not r.handle.lost:  # a dead node is no crash loop: replace at once
                    self._no_start_before = self._clock() + self._retry_after_failure_s

    def _start_one(self) -> bool:
        dep = self.deployment
        adapter = get_adapter(dep.runtime)
        ep = Endpoint(
            id=self.registry.new_id(dep.name), deployment=dep.name, runtime=dep.runtime, url="",
            dialect=adapter.dialect_for(dep), capacity=dep.max_concurrent_sequences,
            region=dep.region, priority=dep.priority, managed=True,
        )
        self.registry.add(ep)
        spec = ReplicaSpec(ep.id, dep, Resources(threads=dep.threads), dep.ready_timeout_s or self.ready_timeout_s)
        try:
            handle = self.backend.start(spec, self._state_fn(ep))
        except PlacementError as exc:
            self.registry.remove(ep.id)
            self.last_error = str(exc)
            self._event("placement_failed", str(exc))
            self._no_start_before = self._clock() + self._retry_after_failure_s
            return False
        self._replicas[ep.id] = _Replica(ep, handle, self._rev, next(self._seq))
        self._event("started", ep.id)
        return True

    def _state_fn(self, ep: Endpoint) -> Callable[[ReplicaAddress | None], None]:
        def on_state(addr: ReplicaAddress | None) -> None:
            if addr is not None:
                ep.url, ep.metrics_url, ep.pid, ep.node = addr.url, addr.metrics_url, addr.pid, addr.node
                if addr.region is not None:
                    self._node_region[ep.id] = ep.region = addr.region
                self.ever_ready = True
            ep.hung, ep.probe_failures = False, 0
            self.registry.set_ready(ep, addr is not None)
            self._kick()

        return on_state

    # -- draining ------------------------------------------------------------------------

    def _drain(self, r: _Replica, timeout_s: float) -> asyncio.Task[None]:
        self.registry.set_state(r.endpoint, EndpointState.DRAINING)
        self._event("draining", r.endpoint.id)
        return self._own(self._finish_drain(r.endpoint, r.handle, timeout_s))

    def _drain_external(self, ep: Endpoint, timeout_s: float) -> asyncio.Task[None]:
        self.registry.set_state(ep, EndpointState.DRAINING)
        self._event("draining", ep.id)
        return self._own(self._finish_drain(ep, None, timeout_s))

    def _own(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)
        return task

    async def _finish_drain(self, ep: Endpoint, handle: ReplicaHandle | None, timeout_s: float) -> None:
        deadline = self._clock() + timeout_s
        while ep.in_flight > 0 and self._clock() < deadline:
            await self._sleep(0.05)
        if ep.in_flight > 0:
            log.warning("%s still had %d request(s) in flight after the %.0f s drain timeout; stopping it",
                        ep.id, ep.in_flight, timeout_s)
        try:
            if handle is not None:
                await handle.stop(10.0)
        finally:
            self.registry.remove(ep.id)
            self._replicas.pop(ep.id, None)
            self._node_region.pop(ep.id, None)
            self._external.pop(ep.id, None)
            self._event("stopped", ep.id)
            self._kick()

    def _event(self, kind: str, detail: str) -> None:
        self.events.append({"time": time.time(), "event": kind, "detail": detail})
        log.info("deployment %s: %s %s", self.name, kind, detail)
