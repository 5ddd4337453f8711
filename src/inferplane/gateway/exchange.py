"""One inference request in flight, as the pipeline, the attempt loop and the relay share it."""

from __future__ import annotations

import time

from inferplane.gateway.http_messages import Request, Responder
from inferplane.gateway.surfaces.base import Encoder, InferenceRequest, Surface
from inferplane.observability.observer import Observers, Outcome, RequestRecord, Usage
from inferplane.protocol.routes import Route
from inferplane.routing.router import RouteInfo

__all__ = ["Exchange"]

_time = time.time
_now = time.perf_counter


class Exchange(RequestRecord):
    """A request's record (what the observers see: it *is* the :class:`RequestRecord` they
    get), its client, and what its attempts learned; one per request, made as its head is
    read. Not a second object beside the record: one object per request is cheaper to make
    than two (``benchmarks/handler_cpu.py --instructions``).

    The pipeline fills the record's fields as it learns them (``tenant`` once authenticated,
    ``model`` once parsed), then sets ``req`` and ``info`` before the attempt loop runs, and
    the relay sets ``encoder`` as an answer starts (each is unset, and read by nothing, before
    that). The rest is the request's progress, written by the attempt loop and read when it finishes.
    """

    __slots__ = ("api", "done", "encoder", "endpoint_id", "headers", "info", "observers", "out", "queued_s", "req",
                 "retries", "runtime")

    req: InferenceRequest
    """The validated request (set by the pipeline once the surface parsed it)."""
    encoder: Encoder | None
    """None: the client speaks OpenAI and gets the runtime's bytes untouched (set by the relay
    when the answer starts: made then, not before the upstream write, it adds nothing to the
    request's way up)."""
    info: RouteInfo
    """What the router needs (set with ``req``)."""

    def __init__(self, request_id: str, api: Surface, route: Route, request: Request, out: Responder,
                 observers: Observers, t_start: float) -> None:
        # Every slot of the record is set here (a test checks it): a hand-written __init__, not
        # the dataclass's, so the fields the pipeline learns later are not passed in to be stored twice.
        self.request_id = request_id
        self.surface = api.name
        self.route = route
        self.t_start = t_start
        self.started_unix = _time()
        self.path = request.path
        self.body = request.body
        self.model = None
        self.stream = False
        self.tenant = None
        self.priority = None
        self.max_tokens = None
        self.session = None
        self.traceparent = request.headers.get("traceparent")
        self.upstream_traceparent = None
        self.notes = {}
        self.api = api
        """The client's surface (renders errors in its API's shape)."""
        self.out = out
        self.observers = observers
        also = api.request_id_header  # e.g. Anthropic's request-id, which its SDK reads
        self.headers = [("x-request-id", request_id)] if also is None else [("x-request-id", request_id),
                                                                            (also, request_id)]
        """Response headers so far: ``x-request-id``, admission's, then the endpoint's."""
        self.queued_s = 0.0
        """Seconds held so far (admission; the attempt loop adds any wait for a replica)."""
        self.retries = 0
        """Replicas tried before the current one."""
        self.endpoint_id: str | None = None
        self.runtime: str | None = None
        self.done = False
        """``finished`` was reported (exactly once, by ``finish``)."""

    def finish(self, status: int, *, error_code: str | None = None, usage: Usage | None = None,
               ttft_s: float | None = None) -> None:
        """Report the request's end to the observers, once (later calls do nothing)."""
        if self.done:
            return
        self.done = True
        self.observers.finished(self, Outcome(status, _now(), error_code, usage, ttft_s, self.endpoint_id,
                                              self.runtime, self.retries, self.queued_s))

    def stream_error(self, message: str, code: str) -> bytes:
        """The event that ends this request's started stream with an error, in its API's shape."""
        enc = self.encoder
        return self.api.stream_error(message, code) if enc is None else enc.error_event(message, code)
