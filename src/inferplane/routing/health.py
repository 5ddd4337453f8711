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

A round is spread over the interval, not fired at once: the endpoints are taken in slices
(in the registry's order, so each keeps its place from round to round), slice ``j`` of ``k``
starting ``j * interval / k`` into the round, as many per slice as keeps the slices
``MIN_GAP_S`` apart (one each up to ``interval / MIN_GAP_S`` endpoints), with at most
``max_in_flight`` checks running; a check costs the event loop about 0.25 ms of CPU, so
1,000 endpoints checked together stalled the requests being served for ~0.25 s each round.
A fleet of up to ``batch`` endpoints is one slice: checked together, then ``interval_s`` of
sleep, as before. An
endpoint is checked once as soon as it joins (the registry tells the checker), without
waiting for its slice; one that leaves before its slice is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import math
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

MIN_GAP_S = 0.005
"""Slices of a round start at least this far apart (more endpoints: more per slice)."""


class HealthChecker:
    def __init__(self, registry: EndpointRegistry, *, interval_s: float, timeout_s: float = 2.0,
                 fail_after: int = 3, access: Callable[[str], UpstreamAccess] | None = None,
                 batch: int = 8, max_in_flight: int = 64) -> None:
        self.registry = registry
        self.access: Callable[[str], UpstreamAccess] = access or (lambda _url: PLAIN)
        """TLS settings and key of an endpoint URL (``serve`` replaces it on reload)."""
        self.fail_after = fail_after
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.batch = batch
        """A fleet this size or smaller is checked all at once each round (one slice)."""
        self._adapters: dict[str, RuntimeAdapter] = {}
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(max_in_flight)
        self._busy: set[str] = set()
        """Ids of the endpoints with a check running (a slice skips them)."""
        self._seen: set[str] = set()
        """Ids of the endpoints whose first check has been started."""
        self._checks: set[asyncio.Task[None]] = set()
        registry.add_listener(self, loads=False)

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
        for task in (self._task, *self._checks):
            if task is not None:
                task.cancel()
        for task in (self._task, *self._checks):
            if task is not None:
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._task = None  # stopped: an endpoint that joins from now on is not checked
        if self._session is not None:
            await self._session.close()

    # The registry's listener: an endpoint that joins is checked at once, not at its slice.
    def routable_changed(self, endpoint: Endpoint) -> None:
        if (self._task is not None and endpoint.url and endpoint.id not in self._seen
                and self.registry.get(endpoint.id) is endpoint):
            self._launch([endpoint])

    def load_changed(self, endpoint: Endpoint) -> None:  # not subscribed (loads=False)
        pass

    async def _loop(self) -> None:
        while True:
            await self._round()

    async def _round(self) -> None:
        """Every endpoint once, the slices paced over ``interval_s``; then one slice's gap of sleep."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        eps = [e for e in self.registry if e.url]
        self._seen &= {e.id for e in eps}
        fresh = [e for e in eps if e.id not in self._seen]
        known = [e for e in eps if e.id in self._seen]
        per = len(eps) if len(eps) <= self.batch else max(1, math.ceil(len(eps) * MIN_GAP_S / self.interval_s))
        slices = max(1, math.ceil(len(eps) / max(per, 1)))
        gap = self.interval_s / slices
        tasks = self._launch(fresh)
        for j in range(slices):
            part = known[j * per:(j + 1) * per]
            if j:  # on schedule; behind it (a stalled loop), still a slice's gap apart: no catch-up burst
                await asyncio.sleep(max(min(gap, MIN_GAP_S), start + j * gap - loop.time()))
            tasks += self._launch([e for e in part if self.registry.get(e.id) is e])
        if tasks:
            await asyncio.wait(tasks)
        await asyncio.sleep(gap)

    def _launch(self, eps: list[Endpoint]) -> list[asyncio.Task[None]]:
        """Start a check of each of ``eps`` that has none running; at most ``max_in_flight`` run at once."""
        started = []
        for ep in eps:
            if ep.id in self._busy:
                continue
            self._busy.add(ep.id)
            self._seen.add(ep.id)
            task = asyncio.create_task(self._bounded(ep))
            self._checks.add(task)
            task.add_done_callback(self._checks.discard)
            started.append(task)
        return started

    async def _bounded(self, ep: Endpoint) -> None:
        try:
            async with self._slots:
                await self._check(ep)
        except Exception:  # a check's own bug must not end the others (nor surface at shutdown)
            log.exception("health check of endpoint %s failed", ep.id)
        finally:
            self._busy.discard(ep.id)

    async def check_all(self) -> None:
        """Every endpoint once, now (at most ``max_in_flight`` at a time; also callable directly, e.g.
        from tests)."""
        eps = [e for e in self.registry if e.url]
        self._seen.update(e.id for e in eps)
        if eps:
            await asyncio.gather(*(self._bounded_direct(e) for e in eps))

    async def _bounded_direct(self, ep: Endpoint) -> None:
        async with self._slots:
            await self._check(ep)

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
