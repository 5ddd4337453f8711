"""The gateway's request handling: routes, validation, routing and the proxy.

Routes:
- ``POST /v1/chat/completions``, ``POST /v1/completions`` - proxied to a replica.
- ``GET /v1/models`` - the served deployments.
- ``GET /health`` - the gateway process is alive (200).
- ``GET /ready`` - 200 when every deployment has at least one ready replica (or is scaled to
  zero and starts one on demand), else 503.
- ``GET /metrics`` - Prometheus.
- ``GET /admin/endpoints`` - every replica with its state; ``GET /admin/routing`` - recent decisions.
- the control plane's ``/admin/*`` routes (``gateway/admin.py``), when ``serve`` attaches them.

Everything the handlers need is built once in ``Gateway.__init__`` (no module state).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from inferplane.config import DeploymentConfig, GatewayConfig
from inferplane.gateway.errors import error_response
from inferplane.gateway.http1 import Request, Responder
from inferplane.gateway.http_limits import HttpLimits
from inferplane.gateway.proxy import Forwarder
from inferplane.gateway.upstream import UpstreamPool
from inferplane.observability.metrics import EndpointSample, GatewayMetrics, RoutingSample
from inferplane.protocol.openai import check_chat, check_completion
from inferplane.protocol.parts import check_parts, check_tools
from inferplane.routing.held import HeldQueue
from inferplane.routing.registry import EndpointRegistry
from inferplane.routing.router import RouteInfo, Router
from inferplane.runtimes.base import Capabilities
from inferplane.runtimes.registry import get_adapter

__all__ = ["Gateway"]

_CHECKS = {"chat": check_chat, "completions": check_completion}


@dataclass(slots=True)
class _Served:
    """A deployment as the gateway serves it."""

    config: DeploymentConfig
    capabilities: Capabilities
    created: int
    parts: frozenset[str] | None
    """Chat content part types its runtime takes (None: not checked)."""


class Gateway:
    """The HTTP front: owns the app, the metrics, the upstream pool and the routing state."""

    def __init__(self, config: GatewayConfig, deployments: tuple[DeploymentConfig, ...],
                 registry: EndpointRegistry, *, held: HeldQueue | None = None) -> None:
        self.config = config
        self.registry = registry
        self.router = Router(registry, deployments, preferred_region=config.preferred_region, held=held)
        self.admin: Callable[[str], dict[str, Callable[[Request, Responder], Awaitable[None]]] | None] | None = None
        """Looks up the control plane's admin routes by path (set by ``serve``)."""
        self.can_serve: Callable[[str], bool] | None = None
        """Whether a deployment with no ready replica will still answer (scaled to zero)."""
        self.metrics = GatewayMetrics(self._endpoint_samples, self._routing_sample)
        self.pool = UpstreamPool(connect_timeout_s=config.connect_timeout_s,
                                 max_body_bytes=config.upstream_max_body_bytes)
        self.forwarder = Forwarder(pool=self.pool, registry=registry, router=self.router, metrics=self.metrics,
                                   first_byte_timeout_s=config.first_byte_timeout_s,
                                   probe_after_s=config.probe_after_s, probe_timeout_s=config.probe_timeout_s,
                                   stream_idle_timeout_s=config.stream_idle_timeout_s)
        now = int(time.time())
        self.served = {d.name: _served(d, now) for d in deployments}
        self._keys = frozenset(config.api_keys)
        self._rid_prefix = os.urandom(6).hex() + "-"  # unique per gateway process; a counter after it
        self._rid_counter = itertools.count(1)
        self._routes = self._build_routes()

    def _endpoint_samples(self) -> list[EndpointSample]:
        return [EndpointSample(e.deployment, e.id, e.runtime, e.ready, e.in_flight,
                               int(self.router.breaker_state(e)), e.stats) for e in self.registry]

    def _routing_sample(self) -> RoutingSample:
        r = self.router
        return RoutingSample(dict(r.decision_counts), dict(r.prefix_predicted_blocks), dict(r.prefix_observed_blocks),
                             r.prefix_index_blocks())

    def _build_routes(self) -> dict[str, dict[str, Callable[[Request, Responder], Awaitable[None]]]]:
        return {
            "/v1/chat/completions": {"POST": self.chat},
            "/v1/completions": {"POST": self.completions},
            "/v1/models": {"GET": self.models},
            "/health": {"GET": self.health},
            "/ready": {"GET": self.ready},
            "/metrics": {"GET": self.prometheus},
            "/admin/endpoints": {"GET": self.admin_endpoints},
            "/admin/routing": {"GET": self.admin_routing},
        }

    async def handle(self, request: Request, out: Responder) -> None:
        """The one entry point the HTTP server calls for every request.

        With API keys configured, a request without a valid key gets 401 on every path but the
        open ones, before routing: an unknown path or a wrong method must not tell a stranger
        which routes exist. ``HEAD`` is served by the ``GET`` handler (the server drops the body).
        """
        path = request.path
        if self._keys and path not in _OPEN_PATHS and not self._authorized(request.headers.get("authorization")):
            error_response(out, 401, "invalid or missing API key (send 'Authorization: Bearer <key>')",
                           code="invalid_api_key", headers=[("WWW-Authenticate", "Bearer")])
            return
        methods = self._routes.get(path)
        if methods is None and self.admin is not None and path.startswith("/admin/"):
            methods = self.admin(path)
        if methods is None:
            error_response(out, 404, f"no route {path[:200]}", code="not_found")
            return
        method = request.method
        handler = methods.get("GET" if method == "HEAD" else method)
        if handler is None:
            allowed = [*methods, "HEAD"] if "GET" in methods else list(methods)
            error_response(out, 405, f"{method} is not allowed on {path}",
                           code="method_not_allowed", headers=[("Allow", ", ".join(allowed))])
            return
        await handler(request, out)

    def _authorized(self, value: str | None) -> bool:
        """``Authorization: Bearer <key>``, the scheme matched case-insensitively (RFC 9110 11.1)."""
        if value is None:
            return False
        scheme, _, token = value.partition(" ")
        return scheme.lower() == "bearer" and token.strip(" \t") in self._keys

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
        self.served = {d.name: _served(d, self.served[d.name].created if d.name in self.served else now)
                       for d in deployments}
        known = {**self.router.deployments, **{d.name: d for d in deployments}}
        self.router.set_deployments(list(known.values()))

    def forget(self, names: list[str]) -> None:
        """Drop the routing state of removed deployments (after their replicas drained)."""
        self.router.set_deployments([d for n, d in self.router.deployments.items() if n not in names])

    # -- inference -----------------------------------------------------------------------

    async def chat(self, request: Request, out: Responder) -> None:
        await self._inference(request, out, "chat")

    async def completions(self, request: Request, out: Responder) -> None:
        await self._inference(request, out, "completions")

    async def _inference(self, request: Request, out: Responder, route: str) -> None:
        t_start = time.perf_counter()
        rid = request.headers.get("x-request-id") or f"{self._rid_prefix}{next(self._rid_counter):x}"
        headers = [("x-request-id", rid)]
        body = request.body
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            error_response(out, 400, f"request body is not valid JSON: {exc}", code="invalid_json", headers=headers)
            return
        if not isinstance(data, dict):
            error_response(out, 400, "request body must be a JSON object", code="invalid_json", headers=headers)
            return
        model = data.get("model")
        served = self.served.get(model) if isinstance(model, str) else None
        problem = _CHECKS[route](data, max_n=128 if served is None else _max_n(served.capabilities))
        if problem is not None:
            error_response(out, 400, problem.message, param=problem.param, code=problem.code, headers=headers)
            return
        if served is None:
            error_response(out, 404, f"the model {model!r} does not exist; GET /v1/models lists the served models",
                           param="model", code="model_not_found", headers=headers)
            return
        if route == "chat":
            runtime = served.config.runtime
            problem = check_parts(data, served.parts, runtime) or \
                check_tools(data, served.capabilities.tools, runtime)
            if problem is not None:
                error_response(out, 400, problem.message, param=problem.param, code=problem.code, headers=headers)
                return
        stream = data.get("stream") is True
        model = served.config.name
        key = request.headers.get("x-session-id") or data.get("user")
        info = RouteInfo(model, key if isinstance(key, str) else None, body)
        gauge = self.metrics.model(model).in_flight
        gauge.inc()
        try:
            await self.forwarder.forward(out, model=model, route=route, data=data, body=body, stream=stream,
                                         info=info, retry=served.config.retry, headers=headers, t_start=t_start)
        finally:
            gauge.dec()

    # -- the rest ------------------------------------------------------------------------

    async def models(self, _request: Request, out: Responder) -> None:
        data = [
            {"id": name, "object": "model", "created": s.created, "owned_by": "inferplane",
             "runtime": s.config.runtime, "ready_replicas": len(self.registry.ready(name))}
            for name, s in self.served.items()
        ]
        _json(out, 200, {"object": "list", "data": data})

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

    async def admin_routing(self, _request: Request, out: Responder) -> None:
        _json(out, 200, {"decisions": list(self.router.decisions)})


def _served(d: DeploymentConfig, created: int) -> _Served:
    adapter = get_adapter(d.runtime)
    parts = adapter.content_parts_for(d)
    return _Served(d, adapter.capabilities(), created, None if parts is None else frozenset(parts))


def _max_n(caps: Capabilities) -> int:
    return caps.max_choices


_JSON = [("Content-Type", "application/json")]
_OPEN_PATHS = frozenset({"/health", "/ready", "/metrics"})
"""Paths that answer without an API key: for probes and scrapers."""


def _json(out: Responder, status: int, obj: Any) -> None:
    out.send(status, orjson.dumps(obj), _JSON)


def _prompt_text(data: dict[str, Any]) -> str:
    """The prompt as one string, for prefix hashing (messages concatenated in order)."""
    msgs = data.get("messages")
    if isinstance(msgs, list):
        parts = []
        for m in msgs:
            if isinstance(m, dict):
                c = m.get("content")
                parts.append(f"<{m.get('role')}>{c if isinstance(c, str) else orjson.dumps(c).decode()}")
        return "".join(parts)
    prompt = data.get("prompt")
    return prompt if isinstance(prompt, str) else orjson.dumps(prompt).decode()
