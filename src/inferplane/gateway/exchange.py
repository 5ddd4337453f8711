"""One inference request in flight, as the pipeline, the attempt loop and the relay share it."""

from __future__ import annotations

import time
from dataclasses import dataclass

from inferplane.gateway.http_messages import Responder
from inferplane.gateway.surfaces.base import Encoder, InferenceRequest, Surface
from inferplane.observability.observer import Observers, Outcome, RequestRecord, Usage
from inferplane.routing.router import RouteInfo

__all__ = ["Exchange"]


@dataclass(slots=True, eq=False)
class Exchange:
    """A validated request, its client and what its attempts learned; one per request.

    ``req`` and ``rec`` are fixed once made (``rec`` belongs to the observers); the rest is
    the request's progress, written by the attempt loop and read when it finishes.
    """

    rec: RequestRecord
    req: InferenceRequest
    out: Responder
    surface: Surface
    encoder: Encoder | None
    """None: the client speaks OpenAI and gets the runtime's bytes untouched."""
    headers: list[tuple[str, str]]
    """Response headers so far: ``x-request-id``, admission's, then the endpoint's."""
    info: RouteInfo
    observers: Observers
    queued_s: float
    """Seconds held so far (admission; the attempt loop adds any wait for a replica). A field
    without a default so the pipeline passes it by position: a keyword argument to a class
    costs a dict made and unpacked per request."""
    retries: int = 0
    """Replicas tried before the current one."""
    endpoint_id: str | None = None
    runtime: str | None = None
    done: bool = False
    """``finished`` was reported (exactly once, by ``finish``)."""

    def finish(self, status: int, *, error_code: str | None = None, usage: Usage | None = None,
               ttft_s: float | None = None) -> None:
        """Report the request's end to the observers, once (later calls do nothing)."""
        if self.done:
            return
        self.done = True
        self.observers.finished(self.rec, Outcome(status, time.perf_counter(), error_code, usage, ttft_s,
                                                  self.endpoint_id, self.runtime, self.retries, self.queued_s))

    def stream_error(self, message: str, code: str) -> bytes:
        """The event that ends this request's started stream with an error, in its API's shape."""
        enc = self.encoder
        return self.surface.stream_error(message, code) if enc is None else enc.error_event(message, code)
