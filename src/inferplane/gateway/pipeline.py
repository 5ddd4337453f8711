"""The request pipeline: one inference request from its head to its last byte.

For every request on a surface's route, in this order::

    record       RequestRecord (id: the client's x-request-id or a fresh one); observers.started
    authenticate admission.authenticate(headers, surface.key_headers) -> Principal | Rejection
    parse        surface.parse -> InferenceRequest (canonical, frozen) | Rejection
    admit        await admission.admit(rec, req, principal) -> extra headers | Rejection
    attempts     Attempts.run: pick -> try once -> outcome, until answered (relay.py) | Rejection
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

from inferplane.gateway.admission import Admission
from inferplane.gateway.attempts import Attempts
from inferplane.gateway.exchange import Exchange
from inferplane.gateway.http_messages import Request, Responder
from inferplane.gateway.surfaces.base import Lookup, Rejection, Served, Surface
from inferplane.observability.observer import Observers, Outcome, RequestRecord
from inferplane.protocol.routes import Route
from inferplane.routing.router import RouteInfo

__all__ = ["Pipeline"]

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
        self._rid_prefix = os.urandom(6).hex() + "-"  # unique per gateway process; a counter after it
        self._rid_counter = itertools.count(1)

    def request_id(self, headers: dict[str, str]) -> str:
        return headers.get("x-request-id") or f"{self._rid_prefix}{next(self._rid_counter):x}"

    async def serve(self, surface: Surface, route: Route, request: Request, out: Responder) -> None:
        """Answer one request on ``surface``'s ``route``; always answers, reports it finished once."""
        t_start = time.perf_counter()
        hdrs = request.headers
        rid = hdrs.get("x-request-id") or f"{self._rid_prefix}{next(self._rid_counter):x}"
        rec = RequestRecord(rid, surface.name, route, t_start, time.time(), request.path, request.body)
        rec.traceparent = hdrs.get("traceparent")
        observers = self.observers
        observers.started(rec)
        headers = [("x-request-id", rid)]
        also = surface.request_id_header  # e.g. Anthropic's request-id, which its SDK reads
        if also:
            headers.append((also, rid))
        x: Exchange | None = None
        try:
            admission = self.admission
            principal = admission.authenticate(hdrs, surface.key_headers)
            rec.tenant = principal.name
            rec.priority = principal.priority
            scope = principal.deployments
            req = surface.parse(route, request, self.lookup if scope is None else _scoped(self.lookup, scope))
            rec.model = model = req.served.config.name  # req.model, less the property's call
            rec.stream = req.stream
            rec.max_tokens = req.max_tokens
            rec.session = req.session
            t_admit = time.perf_counter()
            extra = await admission.admit(rec, req, principal)
            if extra:
                headers += extra
            t_routed = time.perf_counter()
            x = Exchange(rec, req, out, surface, surface.encoder(req), headers,
                         RouteInfo(model, req.session, req.body, tenant=principal.name,
                                   priority=principal.priority_rank), observers, t_routed - t_admit)
            await self.attempts.run(x, t_routed)
        except Rejection as rej:
            status, body, hs = surface.error(rej)
            self._finish(rec, x, status, rej.code)
            if out.started:  # never happens: the attempt loop rejects only before answering
                log.error("request %s rejected after its answer started: %s", rid, rej.message)
                raise
            out.send(status, body, [*headers, *hs])
            return
        except (asyncio.CancelledError, ConnectionResetError, BrokenPipeError):
            self._finish(rec, x, 499, "client_disconnected")
            raise
        except BaseException:
            self._finish(rec, x, 500, "internal_error")  # the server logs it and answers 500
            raise
        if x is None or not x.done:  # every answer reports itself; a path that did not is a bug
            log.error("request %s ended without being accounted", rid)
            self._finish(rec, x, out.status or 500, None)

    def _finish(self, rec: RequestRecord, x: Exchange | None, status: int, code: str | None) -> None:
        if x is not None:
            x.finish(status, error_code=code)
        else:
            self.observers.finished(rec, Outcome(status, time.perf_counter(), code))

    def refused(self, surface: Surface, route: Route, path: str, headers: dict[str, str], status: int,
                code: str) -> None:
        """Report a request the HTTP server refused before the gateway saw it (413, a bad head...)."""
        now = time.perf_counter()
        rec = RequestRecord(self.request_id(headers), surface.name, route, now, time.time(), path)
        self.observers.started(rec)
        self.observers.finished(rec, Outcome(status, now, code))
