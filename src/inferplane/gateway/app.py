"""The gateway's front: routes, the request pipeline, and the gateway's own endpoints.

Routes:
- every route a surface declares (``gateway/surfaces/``): OpenAI's ``POST /v1/chat/completions``
  and ``POST /v1/completions`` by default; each is served by the request pipeline
  (``gateway/pipeline.py``: surface -> admission -> attempt loop -> observers).
- ``GET /v1/models`` - the served deployments; ``GET /v1/models/{id}`` - one of them.
- ``GET /health`` - the gateway process is alive (200).
- ``GET /ready`` - 200 when every deployment has at least one ready replica (or is scaled to
  zero and starts one on demand), else 503.
- ``GET /metrics`` - Prometheus.
- ``GET /admin/endpoints`` - every replica with its state; ``GET /admin/routing`` - recent decisions;
  ``GET /admin/queues`` - held requests per deployment, priority and tenant (gateway/tenancy/queues.py).
- the control plane's ``/admin/*`` routes (``gateway/admin.py``), when ``serve`` attaches them.

Everything the handlers need is built once in ``Gateway.__init__`` (no module state):
the metrics (an observer in ``observers``), the upstream pool, the router, the pipeline.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from inferplane.config import DeploymentConfig, GatewayConfig
from inferplane.gateway.admission import Admission, StaticKeys
from inferplane.gateway.attempts import Attempts
from inferplane.gateway.http1 import Request, Responder
from inferplane.gateway.http_limits import HttpLimits
from inferplane.gateway.pipeline import Pipeline
from inferplane.gateway.surfaces.anthropic import AnthropicSurface
from inferplane.gateway.surfaces.base import Rejection, Served, Surface
from inferplane.gateway.surfaces.ollama import OllamaSurface
from inferplane.gateway.surfaces.openai import OpenAISurface, openai_error
from inferplane.gateway.surfaces.openai_routes import model_object
from inferplane.gateway.tenancy.admission import Refusal
from inferplane.gateway.tenancy.queues import queues_view
from inferplane.gateway.upstream import Connector, UpstreamPool
from inferplane.observability.metrics import (
    EndpointSample,
    GatewayMetrics,
    MetricsObserver,
    RoutingSample,
)
from inferplane.observability.observer import Observers
from inferplane.protocol.routes import Route
from inferplane.routing.held import HeldQueue
from inferplane.routing.registry import EndpointRegistry
from inferplane.routing.router import Router
from inferplane.runtimes.registry import get_adapter

__all__ = ["Gateway"]

Handler = Callable[[Request, Responder], Awaitable[None]]
_DEFAULT_KEY_HEADERS = ("authorization",)


class Gateway:
    """The HTTP front: owns the app, the observers, the upstream pool and the routing state.

    ``surfaces``: the client APIs served (default: OpenAI). ``admission``: who may send what
    (default: the config's ``api_keys``, or anyone). ``observers``: more request observers
    beside the metrics (more can be added later with ``gateway.observers.add``).
    ``connect``: the upstream pool's transport seam (tests: an in-process one).
    """

    def __init__(self, config: GatewayConfig, deployments: tuple[DeploymentConfig, ...],
                 registry: EndpointRegistry, *, held: HeldQueue | None = None,
                 surfaces: Sequence[Surface] | None = None, admission: Admission | None = None,
                 observers: Sequence[Any] = (), connect: Connector | None = None) -> None:
        self.config = config
        self.registry = registry
        self.router = Router(registry, deployments, preferred_region=config.preferred_region, held=held)
        self.admin: Callable[[str], dict[str, Handler] | None] | None = None
        """Looks up the control plane's admin routes by path (set by ``serve``)."""
        self.can_serve: Callable[[str], bool] | None = None
        """Whether a deployment with no ready replica will still answer (scaled to zero)."""
        self.metrics = GatewayMetrics(self._endpoint_samples, self._routing_sample)
        self.observers = Observers((MetricsObserver(self.metrics), *observers), live=self.metrics.live)
        """Every request's life is reported here (started, attempt, first_token, finished)."""
        self.admission: Admission = admission if admission is not None else StaticKeys(config.api_keys)
        self.pool = UpstreamPool(connect_timeout_s=config.connect_timeout_s,
                                 max_body_bytes=config.upstream_max_body_bytes, connect=connect)
        self.attempts = Attempts(pool=self.pool, registry=registry, router=self.router, observers=self.observers,
                                 first_byte_timeout_s=config.first_byte_timeout_s,
                                 probe_after_s=config.probe_after_s, probe_timeout_s=config.probe_timeout_s,
                                 stream_idle_timeout_s=config.stream_idle_timeout_s)
        now = int(time.time())
        self.served: dict[str, Served] = {d.name: _served(d, now) for d in deployments}
        self.pipeline = Pipeline(attempts=self.attempts, observers=self.observers, admission=self.admission,
                                 lookup=self.served.get)
        self.surfaces = tuple(surfaces) if surfaces is not None else _default_surfaces()
        self._surface_at: dict[str, tuple[Surface, Route]] = {}
        self._surface_routes: dict[str, dict[str, Handler]] = {}
        """The surfaces' routes alone (they authenticate in the pipeline): one lookup per request."""
        self._routes = self._build_routes()
        self._open_paths = _OPEN_PATHS
        self._mount_surface_routes()

    def _endpoint_samples(self) -> list[EndpointSample]:
        return [EndpointSample(e.deployment, e.id, e.runtime, e.ready, e.in_flight,
                               int(self.router.breaker_state(e)), e.stats) for e in self.registry]

    def _routing_sample(self) -> RoutingSample:
        r = self.router
        return RoutingSample(dict(r.decision_counts), dict(r.prefix_predicted_blocks), dict(r.prefix_observed_blocks),
                             r.prefix_index_blocks())

    def _build_routes(self) -> dict[str, dict[str, Handler]]:
        routes: dict[str, dict[str, Handler]] = {
            "/v1/models": {"GET": self.models},
            "/health": {"GET": self.health},
            "/ready": {"GET": self.ready},
            "/metrics": {"GET": self.prometheus},
            "/admin/endpoints": {"GET": self.admin_endpoints},
            "/admin/routing": {"GET": self.admin_routing},
            "/admin/queues": {"GET": self.admin_queues},
        }
        for surface in self.surfaces:
            for r in surface.routes():
                methods = routes.setdefault(r.path, {})
                if r.method in methods:
                    raise ValueError(f"two handlers for {r.method} {r.path} (surface {surface.name})")
                methods[r.method] = functools.partial(self.pipeline.serve, surface, r.route)
                self._surface_routes.setdefault(r.path, {})[r.method] = methods[r.method]
                self._surface_at[r.path] = (surface, r.route)
        return routes

    def _mount_surface_routes(self) -> None:
        """The Anthropic and Ollama routes that generate nothing (token counts, the model list)."""
        for surface in self.surfaces:
            if isinstance(surface, AnthropicSurface):
                self.route("/v1/messages/count_tokens", "POST", functools.partial(surface.count_tokens, self))
            elif isinstance(surface, OllamaSurface):
                for path, method, handler in (("/api/tags", "GET", surface.tags), ("/api/show", "POST", surface.show),
                                              ("/api/ps", "GET", surface.ps), ("/api/version", "GET", surface.version)):
                    self.route(path, method, functools.partial(handler, self))

    def _owner(self, path: str) -> Surface | None:
        """The surface whose API a path belongs to (its routes, or under one of its ``prefixes``)."""
        at = self._surface_at.get(path)
        if at is not None:
            return at[0]
        for surface in self.surfaces:
            if any(path.startswith(p) for p in getattr(surface, "prefixes", ())):
                return surface
        return None

    def route(self, path: str, method: str, handler: Handler, *, public: bool = False) -> None:
        """Serve ``method path`` with ``handler`` (a route outside any surface, e.g. a dashboard).
        ``public``: answered without a key, like ``/health`` (only for what holds no data)."""
        if public:
            self._open_paths = self._open_paths | {path}
        methods = self._routes.setdefault(path, {})
        if method in methods:
            raise ValueError(f"{method} {path} is already served")
        methods[method] = handler

    async def handle(self, request: Request, out: Responder) -> None:
        """The one entry point the HTTP server calls for every request.

        A surface's route goes to the pipeline, which authenticates it with the surface's key
        headers. Anything else, with API keys configured, gets 401 without a valid key on every
        path but the open ones, before routing: an unknown path or a wrong method must not tell
        a stranger which routes exist. ``HEAD`` is served by the ``GET`` handler (the server
        drops the body).
        """
        path = request.path
        methods = self._surface_routes.get(path)
        if methods is not None:
            handler = methods.get(request.method)
            if handler is not None:
                await handler(request, out)
                return
        methods = self._routes.get(path)
        owner = self._owner(path)  # answers (and takes keys) in that surface's API, not OpenAI's
        render = owner.error if owner is not None else openai_error
        if path not in self._open_paths:
            try:
                check_admin = getattr(self.admission, "check_admin", None)
                if check_admin is not None and path.startswith("/admin/"):
                    check_admin(request.headers)  # its own key, when it has one (gateway/tenancy)
                else:
                    self.admission.authenticate(request.headers,
                                                owner.key_headers if owner is not None else _DEFAULT_KEY_HEADERS)
            except Refusal as r:
                out.send(*render(r.rejection()))
                return
            except Rejection as rej:
                out.send(*render(rej))
                return
        if methods is None and self.admin is not None and path.startswith("/admin/"):
            methods = self.admin(path)
        if methods is None and path.startswith("/v1/models/"):
            methods = {"GET": self.model}
        if methods is None:
            out.send(*render(Rejection(404, f"no route {path[:200]}", code="not_found")))
            return
        method = request.method
        handler = methods.get("GET" if method == "HEAD" else method)
        if handler is None:
            allowed = [*methods, "HEAD"] if "GET" in methods else list(methods)
            out.send(*render(Rejection(405, f"{method} is not allowed on {path}", code="method_not_allowed",
                                       headers=[("Allow", ", ".join(allowed))])))
            return
        await handler(request, out)

    def refused(self, path: str, headers: dict[str, str], status: int, code: str) -> None:
        """The HTTP server answered a request itself (413, 431, a malformed head): report it to
        the observers if it was for a surface's route."""
        at = self._surface_at.get(path)
        if at is not None:
            self.pipeline.refused(at[0], at[1], path, headers, status, code)

    def http_limits(self) -> HttpLimits:
        """What the HTTP server accepts from clients, from the gateway config."""
        c = self.config
        return HttpLimits(
            max_body_bytes=c.max_body_bytes, max_url_bytes=c.max_url_bytes,
            max_header_line_bytes=c.max_header_line_bytes, max_head_bytes=c.max_head_bytes,
            max_header_count=c.max_header_count, head_timeout_s=c.request_head_timeout_s,
            idle_timeout_s=c.idle_timeout_s, max_connections=c.max_connections,
            max_pipelined_requests=c.max_pipelined_requests,
        )

    def close(self) -> None:
        self.pool.close()

    def set_deployments(self, deployments: tuple[DeploymentConfig, ...]) -> None:
        """Serve exactly these deployments from now on (reload, admin API); kept ones keep
        their ``created`` time. Routing state for removed ones stays until ``forget``."""
        now = int(time.time())
        held = self.router.held
        if held is not None:
            for name in self.served.keys() - {d.name for d in deployments}:
                held.close(name, f"the model {name!r} is no longer served")
            for d in deployments:
                held.reopen(d.name)
        served = {d.name: _served(d, self.served[d.name].created if d.name in self.served else now)
                  for d in deployments}
        self.served.clear()  # in place: the pipeline holds self.served.get
        self.served.update(served)
        known = {**self.router.deployments, **{d.name: d for d in deployments}}
        self.router.set_deployments(list(known.values()))

    def forget(self, names: list[str]) -> None:
        """Drop the routing state of removed deployments (after their replicas drained)."""
        self.router.set_deployments([d for n, d in self.router.deployments.items() if n not in names])

    # -- the rest ------------------------------------------------------------------------

    async def models(self, request: Request, out: Responder) -> None:
        anthropic = next((s for s in self.surfaces if isinstance(s, AnthropicSurface)), None)
        asks_anthropic = anthropic is not None and "anthropic-version" in request.headers
        keys = anthropic.key_headers if asks_anthropic and anthropic is not None else _DEFAULT_KEY_HEADERS
        scope = self.admission.authenticate(request.headers, keys).deployments
        if asks_anthropic and anthropic is not None:  # anthropic SDK's models.list()
            await anthropic.models(self, out, scope)
            return
        data = [model_object(name, s.created, s.config.runtime, len(self.registry.ready(name)))
                for name, s in self.served.items() if scope is None or name in scope]
        _json(out, 200, {"object": "list", "data": data})

    def visible(self, request: Request, key_headers: tuple[str, ...] = _DEFAULT_KEY_HEADERS) -> dict[str, Served]:
        """The served deployments the request's key may call (all without tenants): what model
        lists and lookups outside the pipeline show, so a key learns nothing of the others.
        ``handle`` has authenticated the request already."""
        scope = self.admission.authenticate(request.headers, key_headers).deployments
        if scope is None:
            return self.served
        return {n: s for n, s in self.served.items() if n in scope}

    async def model(self, request: Request, out: Responder) -> None:
        """``GET /v1/models/{id}`` (an id may hold ``/``): OpenAI's model object, or its 404."""
        name = request.path.removeprefix("/v1/models/")
        scope = self.admission.authenticate(request.headers, _DEFAULT_KEY_HEADERS).deployments
        s = self.served.get(name) if scope is None or name in scope else None  # out of scope: as if not served
        if s is None:
            out.send(*openai_error(Rejection(404, f"the model {name[:200]!r} does not exist; GET /v1/models lists "
                                                  "the served models", param="model", code="model_not_found")))
            return
        _json(out, 200, model_object(name, s.created, s.config.runtime, len(self.registry.ready(name))))

    async def health(self, _request: Request, out: Responder) -> None:
        out.send(200, b'{"status":"ok"}', _JSON)

    async def ready(self, _request: Request, out: Responder) -> None:
        per = {name: len(self.registry.ready(name)) for name in self.served}
        can = self.can_serve
        ok = all(n or (can is not None and can(name)) for name, n in per.items())
        body = {"status": "ready" if ok else "not_ready", "ready_replicas": per}
        _json(out, 200 if ok else 503, body)

    async def prometheus(self, _request: Request, out: Responder) -> None:
        out.send(200, self.metrics.render(), [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")])

    async def admin_endpoints(self, _request: Request, out: Responder) -> None:
        eps = [
            {"id": e.id, "deployment": e.deployment, "runtime": e.runtime, "url": e.url, "ready": e.ready,
             "state": e.state.value, "node": e.node,
             "managed": e.managed, "pid": e.pid, "in_flight": e.in_flight, "requests_total": e.requests_total,
             "region": e.region, "priority": e.priority, "stats": e.stats,
             "breaker": self.router.breaker_state(e).name.lower(), "consecutive_failures": e.consecutive_failures,
             "last_error": e.last_error or None, **self.pool.access(e.url).describe()}
            for e in self.registry
        ]
        _json(out, 200, {"endpoints": eps})

    async def admin_queues(self, _request: Request, out: Responder) -> None:
        _json(out, 200, queues_view(self.router, self.router.held))

    async def admin_routing(self, _request: Request, out: Responder) -> None:
        _json(out, 200, {"decisions": self.router.decision_log()})


def _default_surfaces() -> tuple[Surface, ...]:
    """OpenAI, Anthropic and Ollama; Ollama's /api/embed once the OpenAI surface serves embeddings."""
    openai = OpenAISurface()
    embeddings = any(r.route is Route.EMBEDDINGS for r in openai.routes())
    return openai, AnthropicSurface(), OllamaSurface(embeddings_served=embeddings)


def _served(d: DeploymentConfig, created: int) -> Served:
    adapter = get_adapter(d.runtime)
    parts = adapter.content_parts_for(d)
    return Served(d, adapter.capabilities(), created, None if parts is None else frozenset(parts),
                  adapter.tool_support_for(d))


_JSON = [("Content-Type", "application/json")]
_OPEN_PATHS = frozenset({"/health", "/ready", "/metrics"})
"""Paths that answer without an API key: for probes and scrapers."""


def _json(out: Responder, status: int, obj: Any) -> None:
    out.send(status, orjson.dumps(obj), _JSON)
