"""The admin API for the control plane: deployments, endpoints, the autoscaler, reload.

Routes (guarded by the gateway's API keys like every ``/admin/*`` route):

- ``GET /admin/deployments`` - each deployment's desired / starting / ready / draining
  counts, its autoscale settings, endpoints and recent control-plane events.
- ``PATCH /admin/deployments/{name}`` with ``{"replicas": N}`` and/or
  ``{"autoscale": {...} | null}`` - applied at once; not written back to the file (a
  reload from the file puts the file's values back).
- ``POST /admin/deployments/{name}/endpoints`` with an endpoint as the deployment file writes
  one (``{"url": ..., "region"?, "priority"?, "api_key_env"?, "ca_file"?, "tls_verify"?}``) -
  an already-running server joins the pool (201, with its endpoint id, and where its key comes
  from - the variable's name, never the key). The fields are validated by the file's own model
  (``ReplicaTarget``) and the key and CA checks of the file's endpoints (``endpoint_access``).
- ``DELETE /admin/endpoints/{id}`` - drains the endpoint, then removes it; a launched
  replica is replaced (lower ``replicas`` to shrink) (202).
- ``GET /admin/autoscaler`` - per deployment: signals, decision, desired and actual counts,
  the last change and its reason.
- ``POST /admin/reload`` - re-read the deployment file and apply the difference.

Bad input gets a 4xx with an OpenAI-shaped error body.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from inferplane.config import DeploymentConfig
from inferplane.config.models import ConfigError, ReplicaTarget
from inferplane.config.upstreams import LITERAL_KEY_FIELDS
from inferplane.gateway.errors import error_response
from inferplane.gateway.http1 import Request, Responder
from inferplane.placement.plane import ControlPlane

if TYPE_CHECKING:
    from inferplane.autoscale import Autoscaler
    from inferplane.placement.feed import EndpointFeed
    from inferplane.runtimes.access import UpstreamAccess

__all__ = ["AdminApi", "Reloader"]

Handler = Callable[[Request, Responder], Awaitable[None]]
Reloader = Callable[[], Awaitable[dict[str, Any]]]
"""Re-reads the deployment file and applies it; returns what changed; raises ConfigError."""
EndpointAccess = Callable[[DeploymentConfig, ReplicaTarget], "UpstreamAccess"]
"""Checks a joining endpoint's key and TLS settings and makes the gateway use them for its URL;
returns them; raises ValueError (``field: problem``, never the key) for what cannot be used."""

_ENDPOINT_FIELDS = frozenset(ReplicaTarget.model_fields) | LITERAL_KEY_FIELDS
"""What an endpoint in the deployment file may say (a key itself is refused by the model, with a pointer)."""

_JSON = [("Content-Type", "application/json")]


def _json(out: Responder, status: int, obj: Any) -> None:
    out.send(status, orjson.dumps(obj), _JSON)


class AdminApi:
    def __init__(self, plane: ControlPlane, *, autoscaler: Autoscaler | None,
                 apply_deployment: Callable[[DeploymentConfig], None], reload: Reloader | None,
                 endpoint_access: EndpointAccess, feed: EndpointFeed | None = None) -> None:
        self.plane = plane
        self._endpoint_access = endpoint_access
        self.feed = feed
        self.autoscaler = autoscaler
        self._apply_deployment = apply_deployment
        self._reload = reload

    def routes(self, path: str) -> dict[str, Handler] | None:
        """The handlers for ``path`` by method, or None when no admin route matches."""
        if path == "/admin/deployments":
            return {"GET": self.list_deployments}
        if path == "/admin/autoscaler":
            return {"GET": self.autoscaler_status}
        if path == "/admin/reload":
            return {"POST": self.reload}
        if path == "/admin/endpoints/feed" and self.feed is not None:
            return {"GET": self.endpoint_feed}
        parts = path.split("/")
        if len(parts) == 4 and parts[:3] == ["", "admin", "deployments"] and parts[3]:
            name = urllib.parse.unquote(parts[3])
            return {"GET": lambda r, o: self.get_deployment(r, o, name),
                    "PATCH": lambda r, o: self.patch_deployment(r, o, name)}
        if len(parts) == 5 and parts[:3] == ["", "admin", "deployments"] and parts[4] == "endpoints":
            name = urllib.parse.unquote(parts[3])
            return {"POST": lambda r, o: self.add_endpoint(r, o, name)}
        if len(parts) == 4 and parts[:3] == ["", "admin", "endpoints"] and parts[3]:
            eid = urllib.parse.unquote(parts[3])
            return {"DELETE": lambda r, o: self.delete_endpoint(r, o, eid)}
        return None

    # -- views ---------------------------------------------------------------------------

    def _deployment_view(self, name: str) -> dict[str, Any]:
        ctl = self.plane.controllers[name]
        d = ctl.deployment
        c = ctl.counts()
        return {
            "name": name, "runtime": d.runtime, "model": d.model,
            "desired": c.desired, "starting": c.starting, "ready": c.ready, "draining": c.draining,
            "external": c.external, "reason": ctl.reason, "last_error": ctl.last_error,
            "autoscale": d.autoscale.model_dump() if d.autoscale else None,
            "endpoints": [{"id": e.id, "state": e.state.value, "url": e.url, "node": e.node, "managed": e.managed,
                           "in_flight": e.in_flight} for e in self.plane.registry.endpoints(name)],
            "events": list(ctl.events)[-10:],
        }

    async def endpoint_feed(self, request: Request, out: Responder) -> None:
        """``?after=V``: this control plane's launched endpoints once they changed after version V
        (a long poll; see ``placement/feed.py``)."""
        assert self.feed is not None
        raw = urllib.parse.parse_qs(request.query).get("after", ["0"])[0]
        try:
            after = int(raw)
        except ValueError:
            error_response(out, 400, f"after must be an integer version, got {raw[:40]!r}", code="invalid_value")
            return
        _json(out, 200, await self.feed.wait_newer(after))

    async def list_deployments(self, _request: Request, out: Responder) -> None:
        _json(out, 200, {"deployments": [self._deployment_view(n) for n in self.plane.controllers]})

    async def get_deployment(self, _request: Request, out: Responder, name: str) -> None:
        if name not in self.plane.controllers:
            error_response(out, 404, f"no deployment {name!r}", code="deployment_not_found")
            return
        _json(out, 200, self._deployment_view(name))

    async def autoscaler_status(self, _request: Request, out: Responder) -> None:
        _json(out, 200, {"deployments": self.autoscaler.status() if self.autoscaler else {}})

    # -- changes -------------------------------------------------------------------------

    async def patch_deployment(self, request: Request, out: Responder, name: str) -> None:
        ctl = self.plane.controllers.get(name)
        if ctl is None:
            error_response(out, 404, f"no deployment {name!r}", code="deployment_not_found")
            return
        body = _body(request, out, allowed={"replicas", "autoscale"})
        if body is None:
            return
        dep = ctl.deployment
        fields = dep.model_dump(exclude_unset=False)
        desired = ctl.desired
        if "autoscale" in body:
            fields["autoscale"] = body["autoscale"]
        if "replicas" in body:
            desired = body["replicas"]
        fields["replicas"] = desired
        auto = fields.get("autoscale")
        if isinstance(auto, dict) and "replicas" not in body and isinstance(desired, int):
            lo, hi = auto.get("min_replicas", 1), auto.get("max_replicas", 4)
            if isinstance(lo, int) and isinstance(hi, int):
                fields["replicas"] = min(max(desired, lo), hi)  # the autoscaler takes over from here
        try:
            new = DeploymentConfig.model_validate(fields)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(x) for x in err["loc"]) or "body"
            error_response(out, 400, f"{loc}: {err['msg']}", param=loc, code="invalid_value")
            return
        self._apply_deployment(new)
        ctl.set_desired(new.replicas, "admin API")
        _json(out, 200, self._deployment_view(name))

    async def add_endpoint(self, request: Request, out: Responder, name: str) -> None:
        ctl = self.plane.controllers.get(name)
        if ctl is None:
            error_response(out, 404, f"no deployment {name!r}", code="deployment_not_found")
            return
        body = _body(request, out, allowed=_ENDPOINT_FIELDS, shown=ReplicaTarget.model_fields)
        if body is None:
            return
        try:
            target = ReplicaTarget.model_validate(body)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(x) for x in err["loc"]) or "body"
            error_response(out, 400, f"{loc}: {err['msg']}", param=loc, code="invalid_value")
            return
        try:
            access = self._endpoint_access(ctl.deployment, target)
        except ValueError as exc:
            field = str(exc).split(":", 1)[0]
            error_response(out, 400, str(exc), param=field if field in ReplicaTarget.model_fields else None,
                           code="invalid_value")
            return
        ep = ctl.add_endpoint(target.url, region=target.region, priority=target.priority)
        _json(out, 201, {"id": ep.id, "deployment": name, "url": ep.url, "state": ep.state.value, **access.describe()})

    async def delete_endpoint(self, _request: Request, out: Responder, endpoint_id: str) -> None:
        ctl = self.plane.find(endpoint_id)
        if ctl is None:
            error_response(out, 404, f"no endpoint {endpoint_id!r}", code="endpoint_not_found")
            return
        ctl.remove_endpoint(endpoint_id)
        ep = self.plane.registry.get(endpoint_id)
        _json(out, 202, {"id": endpoint_id, "state": ep.state.value if ep else "stopped"})

    async def reload(self, _request: Request, out: Responder) -> None:
        if self._reload is None:
            error_response(out, 409, "this gateway was not started from a deployment file (--config); "
                           "nothing to reload", code="no_config_file")
            return
        try:
            report = await self._reload()
        except ConfigError as exc:
            error_response(out, 400, str(exc), code="invalid_config")
            return
        _json(out, 200, report)


def _body(request: Request, out: Responder, *, allowed: set[str] | frozenset[str],
          shown: Iterable[str] | None = None) -> dict[str, Any] | None:
    """The request's JSON object, or None once a 400 went out; ``shown``: the fields an error
    lists as allowed (default ``allowed``)."""
    try:
        body = orjson.loads(request.body or b"{}")
    except orjson.JSONDecodeError as exc:
        error_response(out, 400, f"request body is not valid JSON: {exc}", code="invalid_json")
        return None
    if not isinstance(body, dict):
        error_response(out, 400, "request body must be a JSON object", code="invalid_json")
        return None
    listed = ", ".join(sorted(allowed if shown is None else shown))
    unknown = sorted(set(body) - allowed)
    if unknown:
        error_response(out, 400, f"unknown field {unknown[0]!r}; allowed: {listed}",
                       param=unknown[0], code="unknown_parameter")
        return None
    if not body:
        error_response(out, 400, f"nothing to change; send one of: {listed}", code="invalid_value")
        return None
    return body
