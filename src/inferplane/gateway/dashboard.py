"""The live dashboard: one static page and the JSON feed it polls.

Routes:

- ``GET /dashboard`` - the page (``gateway/dashboard.html``, shipped as package data): HTML,
  CSS and a small script, no build step, nothing loaded from elsewhere (its
  Content-Security-Policy allows only this origin and the page's own inline script and
  style, by hash). It holds no data, so it is served to anyone; everything it shows
  comes from the feed.
- ``GET /admin/dashboard.json`` - the feed: an ``/admin/*`` route, guarded exactly like
  the rest of the admin API. The page asks for the key once when the feed says 401,
  keeps it in the tab's ``sessionStorage`` and sends it as ``Authorization: Bearer``;
  the key never goes into a URL (no ``?key=``: URLs end up in access logs and history).

The feed (``Dashboard.state``) is plain JSON, polled every 1.5 s by the page:
deployments with desired/starting/ready/draining replicas, their held-request queue,
each replica's load (in flight here, running/waiting in its runtime, KV-cache use and
prefix-cache hit rate from the scraped stats), the rolling request windows
(``observability/recent.py``: requests/s, errors, TTFT/ITL percentiles), recent routing
decisions with their scores, the autoscaler's state and recent changes, control-plane
events, and tenants near their limits (from the ``tenants`` provider the composition
root sets; ``null`` when there is none).

Built once by ``serve``; every source is passed in. Reading the sources is cheap and
happens only when the feed is asked for (never on the request path).
"""

from __future__ import annotations

import base64
import collections
import hashlib
import importlib.resources
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from inferplane import __version__
from inferplane.gateway.http1 import Request, Responder
from inferplane.observability.recent import RecentRequests
from inferplane.observability.tenant_window import TenantWindows
from inferplane.routing.registry import Endpoint, EndpointRegistry, EndpointState

if TYPE_CHECKING:
    from inferplane.autoscale import Autoscaler
    from inferplane.placement.plane import ControlPlane
    from inferplane.routing.held import HeldQueue
    from inferplane.routing.router import Router

__all__ = ["FEED_PATH", "PAGE_PATH", "Dashboard", "TenantLimits", "TenantUsage", "page_headers", "tenants_provider"]

PAGE_PATH = "/dashboard"
FEED_PATH = "/admin/dashboard.json"

Handler = Callable[[Request, Responder], Awaitable[None]]

_DECISIONS_SHOWN = 12
_EVENTS_SHOWN = 20
_TENANTS_SHOWN = 20
_PREFIX_WINDOW_S = 60.0
_FEED_REUSE_S = 0.5


@dataclass(frozen=True, slots=True)
class TenantUsage:
    """One tenant's use of its limits right now, as the tenants provider reports it.

    ``*_used`` counts the current window (requests / tokens in the last minute, requests
    in flight); a ``*_limit`` of None means that limit is not set.
    """

    tenant: str
    priority: str = "normal"
    rpm_used: float = 0.0
    rpm_limit: float | None = None
    tpm_used: float = 0.0
    tpm_limit: float | None = None
    concurrent: int = 0
    max_concurrent: int | None = None

    @property
    def nearest(self) -> float:
        """The largest used/limit fraction over its limits (0 when it has none)."""
        pairs = ((self.rpm_used, self.rpm_limit), (self.tpm_used, self.tpm_limit),
                 (self.concurrent, self.max_concurrent))
        return max((u / lim for u, lim in pairs if lim), default=0.0)


TenantsProvider = Callable[[], Sequence[TenantUsage]]


class TenantLimits(Protocol):
    """What the provider needs of a tenant's configuration (``gateway.tenants`` entries have it)."""

    @property
    def name(self) -> str: ...
    @property
    def priority(self) -> str: ...
    @property
    def rpm_limit(self) -> int | None: ...
    @property
    def tpm_limit(self) -> int | None: ...
    @property
    def max_concurrent(self) -> int | None: ...


def tenants_provider(limits: Callable[[], Sequence[TenantLimits]], windows: TenantWindows,
                     in_progress: Callable[[], Mapping[str, int]] | None = None) -> TenantsProvider:
    """A provider for ``Dashboard.tenants``: each configured tenant's limits against what this
    gateway saw it use in the last minute (``windows``) and its requests in progress (the
    limiter's count, when there is a limiter); tenants seen but not configured (the plain
    ``api_keys`` tenant) are listed without limits."""
    def provide() -> list[TenantUsage]:
        used = windows.usage()
        busy = in_progress() if in_progress is not None else {}
        rows = []
        for t in limits():
            r, tok = used.pop(t.name, (0, 0))
            rows.append(TenantUsage(t.name, t.priority, r, t.rpm_limit, tok, t.tpm_limit, busy.get(t.name, 0),
                                    t.max_concurrent))
        rows += [TenantUsage(name, "normal", r, None, tok, None, busy.get(name, 0)) for name, (r, tok) in used.items()]
        return rows

    return provide


def _read_page() -> bytes:
    return importlib.resources.files("inferplane.gateway").joinpath("dashboard.html").read_bytes()


def page_headers(page: bytes) -> list[tuple[str, str]]:
    """Headers for the page: a CSP that allows this origin only, and the page's own inline
    ``<script>`` and ``<style>`` blocks by their SHA-256 (so nothing injected could run)."""
    def hashes(tag: str) -> str:
        blocks = re.findall(rb"<" + tag.encode() + rb"(?:\s[^>]*)?>(.*?)</" + tag.encode() + rb">", page, re.S)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b).digest()).decode()}'" for b in blocks)

    csp = (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
           "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return [("Content-Type", "text/html; charset=utf-8"), ("Content-Security-Policy", csp),
            ("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY")]


class Dashboard:
    """The page and its feed over the gateway's routing state and control plane."""

    def __init__(self, *, registry: EndpointRegistry, router: Router, recent: RecentRequests,
                 plane: ControlPlane | None = None, held: HeldQueue | None = None,
                 autoscaler: Autoscaler | None = None, tenants: TenantsProvider | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.router = router
        self.recent = recent
        self.plane = plane
        self.held = held
        self.autoscaler = autoscaler
        self.tenants = tenants
        """Reports tenants' use of their limits (set by the composition root; None: no tenants)."""
        self.tenants_note = "no tenants are configured (gateway.tenants)"
        self._wall = wall
        self._started = wall()
        self._page = _read_page()
        self._page_headers = page_headers(self._page)
        self._prefix: dict[str, collections.deque[tuple[float, float, float]]] = {}
        self._cached: tuple[float, bytes] | None = None

    def routes(self, path: str) -> dict[str, Handler] | None:
        if path == PAGE_PATH:
            return {"GET": self.page}
        if path == FEED_PATH:
            return {"GET": self.feed}
        return None

    async def page(self, _request: Request, out: Responder) -> None:
        out.send(200, self._page, self._page_headers)

    async def feed(self, _request: Request, out: Responder) -> None:
        """The state as JSON; several viewers polling at once share one reading per ``_FEED_REUSE_S``."""
        now = self.recent.now()
        cached = self._cached
        if cached is None or now - cached[0] >= _FEED_REUSE_S or now < cached[0]:
            cached = self._cached = (now, orjson.dumps(self.state(now)))
        out.send(200, cached[1], [("Content-Type", "application/json"), ("Cache-Control", "no-store")])

    # -- the state ---------------------------------------------------------------------------

    def state(self, now: float | None = None) -> dict[str, Any]:
        """Everything the page shows, as plain data (see the module docstring)."""
        now = self.recent.now() if now is None else now
        wall = self._wall()
        windows = self.recent.snapshot(now)
        names = list(self.plane.controllers) if self.plane is not None else list(self.router.deployments)
        deployments = [self._deployment(n, windows.pop(n, None), now) for n in names]
        alive = {e.id for e in self.registry}
        for gone in self._prefix.keys() - alive:
            del self._prefix[gone]
        return {
            "time": wall, "version": __version__, "uptime_s": wall - self._started,
            "window_s": self.recent.window_s, "bucket_s": self.recent.bucket_s, "summary_s": self.recent.summary_s,
            "requests_total": self.recent.requests_total, "summary": self.recent.summary_all(now),
            "deployments": deployments,
            "unrouted": windows,  # requests that named no served deployment (bad input, unknown model)
            "routing": self._routing(),
            "autoscaler": self._autoscaler(),
            "events": self._events(),
            **self._tenants(),
        }

    def _deployment(self, name: str, window: dict[str, Any] | None, now: float) -> dict[str, Any]:
        eps = self.registry.endpoints(name)
        ctl = self.plane.controllers.get(name) if self.plane is not None else None
        if ctl is not None:
            c = ctl.counts()
            d = ctl.deployment
            counts = {"desired": c.desired, "starting": c.starting, "ready": c.ready, "draining": c.draining,
                      "external": c.external}
            info = {"runtime": d.runtime, "model": d.model, "policy": d.policy, "autoscale": d.autoscale is not None,
                    "reason": ctl.reason, "last_error": ctl.last_error}
        else:
            by_state = collections.Counter(e.state for e in eps)
            counts = {"desired": len(eps), "starting": by_state[EndpointState.STARTING],
                      "ready": by_state[EndpointState.READY], "draining": by_state[EndpointState.DRAINING],
                      "external": sum(1 for e in eps if not e.managed)}
            known = self.router.deployments.get(name)
            info = {"runtime": known.runtime if known else None, "model": known.model if known else None,
                    "policy": known.policy if known else None, "autoscale": False, "reason": None,
                    "last_error": None}
        held = self.held
        queue = {"depth": held.depth(name) if held else 0,
                 "oldest_wait_s": held.oldest_wait_s(name) if held else 0.0,
                 "held_total": held.held_total[name] if held else 0,
                 "timeouts_total": held.timeouts_total[name] if held else 0,
                 "rejected_total": held.rejected_total[name] if held else 0}
        return {"name": name, **info, "replicas": counts, "queue": queue,
                "endpoints": [self._endpoint(e, now) for e in eps], "recent": window}

    def _endpoint(self, e: Endpoint, now: float) -> dict[str, Any]:
        s = e.stats
        return {
            "id": e.id, "state": e.state.value, "url": e.url, "node": e.node, "region": e.region,
            "runtime": e.runtime, "managed": e.managed, "in_flight": e.in_flight, "requests_total": e.requests_total,
            "running": s.running, "waiting": s.waiting, "kv_cache_usage": s.kv_cache_usage,
            "prefix_hit_rate": _ratio(s.prefix_cache_hits, s.prefix_cache_queries),
            "prefix_hit_rate_recent": self._recent_prefix_rate(e, now),
            "breaker": self.router.breaker_state(e).name.lower(),
        }

    def _recent_prefix_rate(self, e: Endpoint, now: float) -> float | None:
        """Hits / queries over about the last minute, from the counters seen at earlier polls."""
        hits, queries = e.stats.prefix_cache_hits, e.stats.prefix_cache_queries
        if hits is None or queries is None:
            return None
        ring = self._prefix.setdefault(e.id, collections.deque())
        if not ring or ring[-1][1:] != (hits, queries):
            ring.append((now, hits, queries))
        while len(ring) > 2 and ring[1][0] <= now - _PREFIX_WINDOW_S:
            ring.popleft()
        _t0, h0, q0 = ring[0]
        if q0 > queries:  # the runtime restarted: its counters began again
            ring.clear()
            ring.append((now, hits, queries))
            return None
        return _ratio(hits - h0, queries - q0)

    def _routing(self) -> dict[str, Any]:
        decisions = self.router.decision_log()[-_DECISIONS_SHOWN:]
        counts = [{"deployment": d, "policy": p, "decisions": n}
                  for (d, p), n in sorted(self.router.decision_counts.items())]
        return {"decisions": decisions[::-1], "counts": counts}

    def _autoscaler(self) -> dict[str, Any] | None:
        a = self.autoscaler
        if a is None:
            return None
        return {"deployments": a.status(), "history": list(a.history)[::-1]}

    def _events(self) -> list[dict[str, Any]]:
        if self.plane is None:
            return []
        events = [{"deployment": name, **ev} for name, c in self.plane.controllers.items() for ev in c.events]
        events.sort(key=lambda ev: ev.get("time", 0.0), reverse=True)
        return events[:_EVENTS_SHOWN]

    def _tenants(self) -> dict[str, Any]:
        if self.tenants is None:
            return {"tenants": None, "tenants_note": self.tenants_note}
        rows = sorted(self.tenants(), key=lambda t: t.nearest, reverse=True)
        return {"tenants": [{**asdict(t), "nearest": t.nearest} for t in rows[:_TENANTS_SHOWN]],
                "tenants_total": len(rows), "tenants_note": None}


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den
