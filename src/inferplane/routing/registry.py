"""The endpoint registry: every replica the gateway may send traffic to.

Endpoints are added by the placement backend (launched replicas) or from the config
(existing URLs); readiness and scraped stats are written by the health checker; the
gateway acquires endpoints for requests. Everything here runs on the gateway's event
loop: no locks, not thread-safe.

Listeners (:class:`EndpointListener`, e.g. the router's candidate sets) hear of every change
that decides whether an endpoint may take traffic (added, removed, readiness: all through
:meth:`EndpointRegistry.routable_changed`) and of every change of its in-flight count, so
they keep their own structures up to date instead of scanning the registry per request.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from inferplane.routing.types import Candidate
from inferplane.runtimes.base import Dialect, EndpointStats

__all__ = ["Endpoint", "EndpointListener", "EndpointRegistry", "Release"]

Release = Callable[[], None]


@dataclass(slots=True, eq=False)
class Endpoint:
    """One running replica of a deployment, reachable at ``url``."""

    id: str
    deployment: str
    runtime: str
    url: str
    dialect: Dialect
    capacity: int = 1
    region: str | None = None
    priority: int = 0
    metrics_url: str = ""
    """Where the runtime's Prometheus metrics are (empty: ``url + "/metrics"``)."""
    managed: bool = False
    pid: int | None = None
    """Process id of a launched replica's runtime (None for existing URLs)."""
    """Launched and supervised by inferplane (vs an existing URL from the config)."""
    ready: bool = False
    in_flight: int = 0
    stats: EndpointStats = field(default_factory=EndpointStats)
    consecutive_failures: int = 0
    probe_failures: int = 0
    hung: bool = False
    """Taken out of the pool by failed probes while its process is up (launched replicas)."""
    requests_total: int = 0

    def candidate(self) -> Candidate:
        s = self.stats
        return Candidate(
            endpoint_id=self.id,
            in_flight=self.in_flight,
            waiting=int(s.waiting or 0),
            running=int(s.running or 0),
            kv_cache_usage=s.kv_cache_usage,
            capacity=self.capacity,
            region=self.region,
            priority=self.priority,
        )


class EndpointListener(Protocol):
    """Told of registry changes, synchronously, after they happened. Must not raise."""

    def routable_changed(self, endpoint: Endpoint) -> None:
        """``endpoint`` was added, removed, or changed readiness: ask ``registry.routable``."""

    def load_changed(self, endpoint: Endpoint) -> None:
        """``endpoint.in_flight`` changed (a request was acquired or released)."""


class EndpointRegistry:
    """Endpoints by deployment, with acquire/release accounting of in-flight requests."""

    def __init__(self) -> None:
        self._by_deployment: dict[str, list[Endpoint]] = {}
        self._by_id: dict[str, Endpoint] = {}
        self._ids = itertools.count(1)
        self._listeners: list[Callable[[Endpoint], None]] = []
        self._watchers: list[EndpointListener] = []

    def add_listener(self, listener: EndpointListener) -> None:
        """Keep ``listener`` told of every routable and load change from now on."""
        self._watchers.append(listener)

    def routable(self, endpoint: Endpoint) -> bool:
        """May ``endpoint`` take new requests? (Registered and ready.) The one definition."""
        return endpoint.ready and self._by_id.get(endpoint.id) is endpoint

    def routable_changed(self, endpoint: Endpoint) -> None:
        """The one place every change of what ``routable`` says goes through."""
        for w in self._watchers:
            w.routable_changed(endpoint)

    def new_id(self, deployment: str) -> str:
        return f"{deployment}-{next(self._ids)}"

    def add(self, endpoint: Endpoint) -> None:
        if endpoint.id in self._by_id:
            raise ValueError(f"endpoint id {endpoint.id!r} already registered")
        self._by_id[endpoint.id] = endpoint
        self._by_deployment.setdefault(endpoint.deployment, []).append(endpoint)
        self.routable_changed(endpoint)

    def remove(self, endpoint_id: str) -> None:
        ep = self._by_id.pop(endpoint_id, None)
        if ep is not None:
            self._by_deployment[ep.deployment].remove(ep)
            self.routable_changed(ep)
            for fn in self._listeners:
                fn(ep)

    def on_removed(self, fn: Callable[[Endpoint], None]) -> None:
        """Call ``fn(endpoint)`` whenever an endpoint leaves the pool (removed or unready)."""
        self._listeners.append(fn)

    def set_ready(self, endpoint: Endpoint, ready: bool) -> None:
        was = endpoint.ready
        endpoint.ready = ready
        if was != ready:
            self.routable_changed(endpoint)
        if was and not ready:
            for fn in self._listeners:
                fn(endpoint)

    def get(self, endpoint_id: str) -> Endpoint | None:
        return self._by_id.get(endpoint_id)

    def endpoints(self, deployment: str | None = None) -> list[Endpoint]:
        if deployment is None:
            return list(self._by_id.values())
        return list(self._by_deployment.get(deployment, ()))

    def ready(self, deployment: str) -> list[Endpoint]:
        return [e for e in self._by_deployment.get(deployment, ()) if e.ready]

    def any_ready(self) -> bool:
        return any(e.ready for e in self._by_id.values())

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(list(self._by_id.values()))

    def acquire(self, endpoint: Endpoint) -> Release:
        """Count a request in flight on ``endpoint``; the returned release is idempotent."""
        endpoint.in_flight += 1
        endpoint.requests_total += 1
        watchers = self._watchers
        for w in watchers:
            w.load_changed(endpoint)
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                endpoint.in_flight -= 1
                for w in watchers:
                    w.load_changed(endpoint)

        return release
