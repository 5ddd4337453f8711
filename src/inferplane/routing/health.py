"""Background health checking and metrics scraping of every endpoint.

One task per gateway (owned by the app; cancelled on shutdown). Every
``interval_s``: each endpoint's ``/metrics`` is scraped and mapped by its adapter onto
``EndpointStats``; endpoints that inferplane did not launch are also probed for
readiness; launched ones are probed too, so one that hangs (alive but not answering)
leaves the pool until it answers again - its supervisor only sees exits.

Every request goes out with the endpoint's TLS settings and key (``access``, the same table
the proxy's pool uses). Why a check failed (``certificate verify failed: ...``, ``answered
401: it does not accept the API key in $KEY``) is kept on the endpoint (``last_error``, shown
in /admin/endpoints) and logged once each time it changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp

from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.runtimes.access import PLAIN, UpstreamAccess
from inferplane.runtimes.base import RuntimeAdapter
from inferplane.runtimes.discovery import fetch_served, match_model
from inferplane.runtimes.probe import aiohttp_ssl, probe_problem
from inferplane.runtimes.registry import get_adapter

__all__ = ["HealthChecker"]

log = logging.getLogger(__name__)


class HealthChecker:
    def __init__(self, registry: EndpointRegistry, *, interval_s: float, timeout_s: float = 2.0,
                 fail_after: int = 3, access: Callable[[str], UpstreamAccess] | None = None) -> None:
        self.registry = registry
        self.access: Callable[[str], UpstreamAccess] = access or (lambda _url: PLAIN)
        """TLS settings and key of an endpoint URL (``serve`` replaces it on reload)."""
        self.fail_after = fail_after
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._adapters: dict[str, RuntimeAdapter] = {}
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def _judge(self, ep: Endpoint, ok: bool) -> None:
        """Readiness from probes.

        Existing URLs: ready on a passing probe, not ready after ``fail_after`` failures.
        Launched replicas: their supervisor says when the process is up or gone; the probes
        only take a replica that stopped answering (hung, overloaded) out of the pool after
        ``fail_after`` failures, and put it back when it answers again.
        """
        if ok:
            ep.probe_failures = 0
            if ep.managed and not ep.hung:
                return
            if ep.hung or not ep.ready:
                log.info("endpoint %s answers its probe again: ready", ep.id)
            ep.hung = False
            self.registry.set_ready(ep, True)
            return
        ep.probe_failures += 1
        if ep.probe_failures < self.fail_after or not ep.ready:
            if not ep.managed and ep.probe_failures >= self.fail_after:
                self.registry.set_ready(ep, False)
            return
        log.warning("endpoint %s failed %d probes in a row: taken out of the pool", ep.id, ep.probe_failures)
        ep.hung = ep.managed
        self.registry.set_ready(ep, False)

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

    async def _serves_model(self, session: aiohttp.ClientSession, ep: Endpoint, access: UpstreamAccess) -> str | None:
        """None when ``ep`` answers with a model list that has the deployment's model; else why not."""
        served = await fetch_served(session, ep.url, self.timeout_s, access=access)
        if isinstance(served, str):
            return served
        match = match_model(served, deployment=ep.deployment, wanted=ep.upstream_model or None)
        if match.model is None:
            if ep.ready:
                log.warning("endpoint %s (%s) taken out of the pool: %s", ep.id, ep.url, match.problem)
            return match.problem
        ep.upstream_model = match.model
        return None

    def _note(self, ep: Endpoint, problem: str | None) -> None:
        """Keep why the check failed on the endpoint; log it when it changed (not every round)."""
        text = problem or ""
        if text and text != ep.last_error:
            log.warning("endpoint %s (%s) failed its health check: %s", ep.id, ep.url, text)
        ep.last_error = text

    async def _check(self, ep: Endpoint) -> None:
        if self._session is None:
            raise RuntimeError("HealthChecker.start() was not called")
        adapter = self._adapter(ep.runtime)
        url = ep.url
        access = self.access(url)
        if ep.managed or not ep.dialect.passthrough:
            problem = await probe_problem(self._session, url, adapter.probe(), self.timeout_s, access=access)
        else:  # a server inferplane did not start: ready when it answers and serves the model
            problem = await self._serves_model(self._session, ep, access)
        if url != ep.url:  # a supervised replica restarted on a new port meanwhile: stale answer
            return
        self._note(ep, problem)
        self._judge(ep, problem is None)
        if not ep.ready:
            return
        try:
            async with self._session.get(ep.metrics_url or ep.url + "/metrics", headers=access.headers() or None,
                                         ssl=aiohttp_ssl(access)) as resp:
                if resp.status != 200:
                    return
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError, OSError):
            return
        try:
            ep.stats = adapter.parse_metrics(text)
        except ValueError as exc:
            log.warning("cannot parse metrics of %s: %s", ep.id, exc)
