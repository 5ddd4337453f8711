"""Background health checking and metrics scraping of every endpoint.

One task per gateway (owned by the app; cancelled on shutdown). Every
``interval_s``: each endpoint's ``/metrics`` is scraped and mapped by its adapter onto
``EndpointStats``; endpoints that inferplane did not launch are also probed for
readiness (launched ones are probed by their supervisor).
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.runtimes.base import RuntimeAdapter
from inferplane.runtimes.probe import probe_once
from inferplane.runtimes.registry import get_adapter

__all__ = ["HealthChecker"]

log = logging.getLogger(__name__)


class HealthChecker:
    def __init__(self, registry: EndpointRegistry, *, interval_s: float, timeout_s: float = 2.0) -> None:
        self.registry = registry
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._adapters: dict[str, RuntimeAdapter] = {}
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def _adapter(self, runtime: str) -> RuntimeAdapter:
        a = self._adapters.get(runtime)
        if a is None:
            a = self._adapters[runtime] = get_adapter(runtime)
        return a

    def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        self._task = asyncio.create_task(self._loop(), name="health-checker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._session is not None:
            await self._session.close()

    async def _loop(self) -> None:
        while True:
            await self.check_all()
            await asyncio.sleep(self.interval_s)

    async def check_all(self) -> None:
        """One round over all endpoints (also callable directly, e.g. from tests)."""
        eps = [e for e in self.registry if e.url]
        if eps:
            await asyncio.gather(*(self._check(e) for e in eps))

    async def _check(self, ep: Endpoint) -> None:
        if self._session is None:
            raise RuntimeError("HealthChecker.start() was not called")
        adapter = self._adapter(ep.runtime)
        if not ep.managed:
            ok = await probe_once(self._session, ep.url, adapter.probe(), self.timeout_s)
            if ok != ep.ready:
                log.info("endpoint %s is now %s", ep.id, "ready" if ok else "NOT ready")
            self.registry.set_ready(ep, ok)
        if not ep.ready:
            return
        try:
            async with self._session.get(ep.metrics_url or ep.url + "/metrics") as resp:
                if resp.status != 200:
                    return
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError, OSError):
            return
        try:
            ep.stats = adapter.parse_metrics(text)
        except ValueError as exc:
            log.warning("cannot parse metrics of %s: %s", ep.id, exc)
