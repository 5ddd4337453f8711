"""The request pipeline: one inference request from its head to its last byte.

For every request on a surface's route, in this order::

    record       Exchange, the request's RequestRecord (id: the client's x-request-id or a
                 fresh one); observers.started
    authenticate admission.authenticate(headers, surface.key_headers) -> Principal | Rejection
    parse        surface.parse -> InferenceRequest (canonical, frozen) | Rejection
    admit        await admission.admit(rec, req, principal) -> extra headers | Rejection,
                 for a principal admission has limits to check (``Principal.limited``)
    attempts     Attempts.run: pick -> try once -> outcome, until answered (relay.py, which makes
                 the surface's encoder once an answer is there, not before the upstream write) | Rejection
    finish       observers.finished, exactly once: answered, rejected (in the surface's shape),
                 client gone (499) or a bug (500)

Response headers: ``x-request-id`` first, then what admission returned, then the answering
endpoint's (``x-inferplane-endpoint``/``-policy``/``-fallback``), then the runtime's passed
ones. A surface's ``Rejection`` headers go last.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time

from inferplane.gateway.admission import ANONYMOUS, Admission
from inferplane.gateway.attempts import Attempts
from inferplane.gateway.exchange import Exchange
from inferplane.gateway.http_messages import Request, Responder
from inferplane.gateway.surfaces.base import Lookup, Rejection, Served, Surface
from inferplane.observability.observer import Observers, Outcome, RequestRecord
from inferplane.protocol.routes import Route
from inferplane.routing.router import RouteInfo

__all__ = ["Pipeline"]

_now = time.perf_counter

log = logging.getLogger(__name__)


def _scoped(lookup: Lookup, scope: frozenset[str]) -> Lookup:
    """``lookup`` for a principal that may call only ``scope``: any other name is 403."""
    def scoped(name: str) -> Served | None:
        if name not in scope:
            raise Rejection(403, f"this API key may not call the model {str(name)[:200]!r}; GET /v1/models "
                            "lists the models it may call", code="model_not_allowed", type_="permission_error")
        return lookup(name)

    return scoped


class Pipeline:
    """Runs inference requests through surface, admission and attempts, reporting to observers."""

    def __init__(self, *, attempts: Attempts, observers: Observers, admission: Admission, lookup: Lookup) -> None:
        self.attempts = attempts
        self.observers = observers
        self.admission = admission
        self.lookup = lookup
        """Finds a served deployment by name (the gateway swaps its table on reload)."""
        self._rid_format = os.urandom(6).hex() + "-%x"  # unique per gateway process; a counter after it
        self._rid_counter = itertools.count(1)

    def request_id(self, headers: dict[str, str]) -> str:
        return headers.get("x-request-id") or self._rid_format % next(self._rid_counter)

    async def serve(self, surface: Surface, route: Route, request: Request, out: Responder) -> None:
        """Answer one request on ``surface``'s ``route``; always answers, reports it finished once."""
        t_start = _now()
        hdrs = request.headers
        x = Exchange(hdrs.get("x-request-id") or self._rid_format % next(self._rid_counter), surface, route,
                     request, out, self.observers, t_start)
        self.observers.started(x)
        try:
            admission = self.admission
            principal = admission.authenticate(hdrs, surface.key_headers)
            if principal is not ANONYMOUS:
                x.tenant = principal.name
                x.priority = principal.priority
            scope = principal.deployments
            req = surface.parse(route, request, self.lookup if scope is None else _scoped(self.lookup, scope))
            x.model = model = req.served.config.name  # req.model, less the property's call
            x.stream = req.stream
            x.max_tokens = req.max_tokens
            x.session = req.session
            x.req = req
            # positional: a keyword argument to a class costs a dict made and unpacked per request
            x.info = RouteInfo(model, req.session, req.body, None, principal.name, principal.priority_rank)
            if principal.limited:  # else admission has nothing to check: no call, no coroutine
                t_admit = _now()
                extra = await admission.admit(x, req, principal)
                if extra:
                    x.headers += extra
                t_routed = _now()
                x.queued_s = t_routed - t_admit
            else:
                t_routed = _now()
            await self.attempts.run(x, t_routed)
        except Rejection as rej:
            status, body, hs = surface.error(rej)
            x.finish(status, error_code=rej.code)
            if out.started:  # never happens: the attempt loop rejects only before answering
                log.error("request %s rejected after its answer started: %s", x.request_id, rej.message)
                raise
            out.send(status, body, [*x.headers, *hs])
            return
        except (asyncio.CancelledError, ConnectionResetError, BrokenPipeError):
            x.finish(499, error_code="client_disconnected")
            raise
        except BaseException:
            x.finish(500, error_code="internal_error")  # the server logs it and answers 500
            raise
        if not x.done:  # every answer reports itself; a path that did not is a bug
            log.error("request %s ended without being accounted", x.request_id)
            x.finish(out.status or 500)

    def refused(self, surface: Surface, route: Route, path: str, headers: dict[str, str], status: int,
                code: str) -> None:
        """Report a request the HTTP server refused before the gateway saw it (413, a bad head...)."""
        now = _now()
        rec = RequestRecord(self.request_id(headers), surface.name, route, now, time.time(), path)
        self.observers.started(rec)
        self.observers.finished(rec, Outcome(status, now, code))
