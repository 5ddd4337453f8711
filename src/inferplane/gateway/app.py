"""The gateway's aiohttp application: routes, validation, routing and the proxy.

Routes:
- ``POST /v1/chat/completions``, ``POST /v1/completions`` - proxied to a replica.
- ``GET /v1/models`` - the served deployments.
- ``GET /health`` - the gateway process is alive (200).
- ``GET /ready`` - 200 when every deployment has at least one ready replica, else 503.
- ``GET /metrics`` - Prometheus.
- ``GET /admin/endpoints`` - every replica with its state; ``GET /admin/routing`` - recent decisions.

Everything the handlers need is built once in ``Gateway.__init__`` (no module state).
"""

from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from inferplane.config import DeploymentConfig, GatewayConfig
from inferplane.gateway.errors import error_response
from inferplane.gateway.proxy import Forwarder, UpstreamPool
from inferplane.observability.metrics import GatewayMetrics
from inferplane.protocol.openai import RequestProblem, check_chat, check_completion
from inferplane.routing.policies import make_policy
from inferplane.routing.prefix import prefix_block_hashes
from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.routing.types import Policy, RouteRequest
from inferplane.runtimes.base import Capabilities
from inferplane.runtimes.registry import get_adapter

__all__ = ["Gateway"]

_CHECKS = {"chat": check_chat, "completions": check_completion}


@dataclass(slots=True)
class _Served:
    """A deployment as the gateway serves it."""

    config: DeploymentConfig
    capabilities: Capabilities
    policy: Policy
    created: int


class Gateway:
    """The HTTP front: owns the app, the metrics, the upstream pool and the routing state."""

    def __init__(self, config: GatewayConfig, deployments: tuple[DeploymentConfig, ...],
                 registry: EndpointRegistry) -> None:
        self.config = config
        self.registry = registry
        self.metrics = GatewayMetrics(registry)
        self.pool = UpstreamPool(connect_timeout_s=config.connect_timeout_s)
        self.forwarder = Forwarder(
            pool=self.pool, registry=registry, metrics=self.metrics,
            max_attempts=config.max_attempts, first_byte_timeout_s=config.first_byte_timeout_s,
        )
        now = int(time.time())
        self.served: dict[str, _Served] = {}
        for d in deployments:
            adapter = get_adapter(d.runtime)
            self.served[d.name] = _Served(d, adapter.capabilities(), make_policy(d.policy), now)
        self.decisions: collections.deque[dict[str, Any]] = collections.deque(maxlen=200)
        self._auth = {f"Bearer {k}" for k in config.api_keys}
        registry.on_removed(self._endpoint_removed)
        self.app = self._build_app()

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_body_bytes)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        app.router.add_get("/ready", self.ready)
        app.router.add_get("/metrics", self.prometheus)
        app.router.add_get("/admin/endpoints", self.admin_endpoints)
        app.router.add_get("/admin/routing", self.admin_routing)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _cleanup(self, _app: web.Application) -> None:
        await self.pool.close()

    def _endpoint_removed(self, ep: Endpoint) -> None:
        served = self.served.get(ep.deployment)
        if served is not None:
                served.policy.on_removed(ep.id)

    # -- inference -----------------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._inference(request, "chat")

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._inference(request, "completions")

    async def _inference(self, request: web.Request, route: str) -> web.StreamResponse:
        t_start = time.perf_counter()
        rid = request.headers.get("x-request-id") or os.urandom(12).hex()
        headers = {"x-request-id": rid}
        if self._auth and request.headers.get("Authorization") not in self._auth:
            return error_response(401, "invalid or missing API key (send 'Authorization: Bearer <key>')",
                                  code="invalid_api_key", headers=headers)
        length = request.content_length
        if length is not None and length > self.config.max_body_bytes:
            return self._too_large(headers)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large(headers)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return error_response(400, f"request body is not valid JSON: {exc}", code="invalid_json",
                                  headers=headers)
        if not isinstance(data, dict):
            return error_response(400, "request body must be a JSON object", code="invalid_json", headers=headers)
        model = data.get("model")
        served = self.served.get(model) if isinstance(model, str) else None
        problem = _CHECKS[route](data, max_n=128 if served is None else _max_n(served.capabilities))
        if problem is not None:
            return _bad_request(problem, headers)
        if served is None:
            return error_response(404, f"the model {model!r} does not exist; GET /v1/models lists the served models",
                                  param="model", code="model_not_found", headers=headers)
        stream = data.get("stream") is True
        model = served.config.name
        route_request = self._route_request(served, model, data, request)
        gauge = self.metrics.in_flight.labels(model)
        gauge.inc()
        try:
            return await self.forwarder.forward(
                request, model=model, route=route, data=data, body=body, stream=stream,
                pick=lambda tried: self._pick(served, route_request, tried),
                headers=headers, t_start=t_start,
            )
        finally:
            gauge.dec()

    def _too_large(self, headers: dict[str, str]) -> web.Response:
        return error_response(
            413, f"request body is larger than the limit of {self.config.max_body_bytes} bytes",
            code="request_too_large", headers=headers,
        )

    def _route_request(self, served: _Served, model: str, data: dict[str, Any], request: web.Request) -> RouteRequest:
        policy = served.policy.name
        if policy == "prefix":
            return RouteRequest(model, prefix_hashes=prefix_block_hashes(_prompt_text(data)))
        if policy == "session":
            key = request.headers.get("x-session-id") or data.get("user")
            return RouteRequest(model, session_key=key if isinstance(key, str) else None)
        return RouteRequest(model)

    def _pick(self, served: _Served, rr: RouteRequest, tried: set[str]) -> Endpoint | None:
        eps = [e for e in self.registry.ready(served.config.name) if e.id not in tried]
        if not eps:
            return None
        if len(eps) == 1:
            return eps[0]
        decision = served.policy.choose(rr, [e.candidate() for e in eps])
        served.policy.on_routed(rr, decision.endpoint_id)
        self.decisions.append({"time": time.time(), "model": rr.model, "endpoint": decision.endpoint_id,
                               "policy": decision.policy, "scores": decision.scores})
        return self.registry.get(decision.endpoint_id)

    # -- the rest ------------------------------------------------------------------------

    async def models(self, _request: web.Request) -> web.Response:
        data = [
            {"id": name, "object": "model", "created": s.created, "owned_by": "inferplane",
             "runtime": s.config.runtime, "ready_replicas": len(self.registry.ready(name))}
            for name, s in self.served.items()
        ]
        return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type="application/json")

    async def health(self, _request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type="application/json")

    async def ready(self, _request: web.Request) -> web.Response:
        per = {name: len(self.registry.ready(name)) for name in self.served}
        ok = all(per.values())
        body = {"status": "ready" if ok else "not_ready", "ready_replicas": per}
        return web.Response(status=200 if ok else 503, body=orjson.dumps(body), content_type="application/json")

    async def prometheus(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4"})

    async def admin_endpoints(self, _request: web.Request) -> web.Response:
        eps = [
            {"id": e.id, "deployment": e.deployment, "runtime": e.runtime, "url": e.url, "ready": e.ready,
             "managed": e.managed, "in_flight": e.in_flight, "requests_total": e.requests_total,
             "region": e.region, "priority": e.priority, "stats": e.stats}
            for e in self.registry
        ]
        return web.Response(body=orjson.dumps({"endpoints": eps}), content_type="application/json")

    async def admin_routing(self, _request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps({"decisions": list(self.decisions)}), content_type="application/json")


def _max_n(caps: Capabilities) -> int:
    return caps.max_choices


def _bad_request(problem: RequestProblem, headers: dict[str, str]) -> web.Response:
    return error_response(400, problem.message, param=problem.param, code=problem.code, headers=headers)


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
