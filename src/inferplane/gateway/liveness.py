"""Is a replica that went quiet frozen, or just busy? One quick probe decides.

Used by the proxy when a request has waited ``probe_after_s`` for its first byte, or a
stream for its next chunk (see docs/reliability.md for why a probe and not hedging).
The probe is the adapter's readiness request on a fresh connection; llama.cpp, vLLM and
the other servers answer it from their HTTP layer while the engine is busy, so a slow
long prompt passes and a stopped (SIGSTOP) or wedged process does not.

Concurrent waiters on one endpoint share one probe, and its answer is reused for
``reuse_s``: a replica stuck with 50 waiting requests gets one probe, not 50.

An endpoint that fails ``eject_after`` probes in a row (2: one slow answer on a starved
machine is not enough) is taken out of the pool - unless it is its deployment's last
ready replica (like Envoy's outlier detection never ejecting every host) - and the health
checker puts it back when it answers again. A single failed probe already moves the
request that asked to another replica.
"""

from __future__ import annotations

import asyncio
import logging
import time

from inferplane.gateway.upstream import UpstreamPool
from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.runtimes.base import ProbeSpec
from inferplane.runtimes.registry import get_adapter

__all__ = ["Liveness"]

log = logging.getLogger(__name__)


class Liveness:
    """Probes replicas on demand. Event-loop bound."""

    def __init__(self, pool: UpstreamPool, registry: EndpointRegistry, *, timeout_s: float,
                 reuse_s: float = 1.0, eject_after: int = 2) -> None:
        self.pool = pool
        self.eject_after = eject_after
        self._fails: dict[str, int] = {}
        self.registry = registry
        self.timeout_s = timeout_s
        self.reuse_s = reuse_s
        self._inflight: dict[str, asyncio.Future[bool]] = {}
        self._last: dict[str, tuple[float, bool, str]] = {}
        self._probes: dict[str, ProbeSpec] = {}

    def _probe(self, runtime: str) -> ProbeSpec:
        p = self._probes.get(runtime)
        if p is None:
            p = self._probes[runtime] = get_adapter(runtime).probe()
        return p

    async def alive(self, ep: Endpoint) -> bool:
        """True if ``ep`` answers its probe within ``timeout_s`` (shared, briefly cached)."""
        url = ep.url
        last = self._last.get(ep.id)
        if last is not None and last[2] == url and time.monotonic() - last[0] < self.reuse_s:
            return last[1]
        fut = self._inflight.get(ep.id)
        if fut is None:
            fut = self._inflight[ep.id] = asyncio.ensure_future(self._run(ep, url))
        return await asyncio.shield(fut)

    async def _run(self, ep: Endpoint, url: str) -> bool:
        try:
            p = self._probe(ep.runtime)
            ok = await self.pool.probe(url, p.method, p.path, p.body, self.timeout_s)
            self._last[ep.id] = (time.monotonic(), ok, url)
            fails = self._fails[ep.id] = 0 if ok else self._fails.get(ep.id, 0) + 1
            if fails >= self.eject_after and url == ep.url:
                self._eject(ep)
            return ok
        finally:
            self._inflight.pop(ep.id, None)

    def _eject(self, ep: Endpoint) -> None:
        if not ep.ready:
            return
        others = [e for e in self.registry.ready(ep.deployment) if e is not ep]
        if not others:
            log.warning("endpoint %s does not answer its health probe within %.1f s, but it is the last ready "
                        "replica of %s: kept in the pool", ep.id, self.timeout_s, ep.deployment)
            return
        log.warning("endpoint %s did not answer %d health probes in a row within %.1f s each (frozen?): taken "
                    "out of the pool until it answers again", ep.id, self._fails.get(ep.id, 0), self.timeout_s)
        ep.hung = ep.managed
        self.registry.set_ready(ep, False)
