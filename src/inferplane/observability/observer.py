"""The request observer: the one way anything outside the request path sees a request.

The gateway's request pipeline reports each request's life exactly once, in order::

    started(rec)                      once, as soon as the request has an id (before validation)
    attempt(rec, Attempt)             once per upstream try, when its outcome is known (0..n)
    first_token(rec, t)               once, when the first generated content went to the client
    token_gap(rec, gap_s)             optional (only observers that define it): for each later
                                      content chunk, the seconds since the one before it
    finished(rec, Outcome)            once, always - success, upstream failure, the gateway's
                                      own rejection (400/401/403/404/413/429), client disconnect

Metrics, traces, the access log, tenant limits (settling reserved tokens) and the
dashboard's recent-requests view are observers. The hot path calls ``Observers``, never a
metrics object directly.

Contract for implementations:
- Called on the gateway's event loop; must not block, must not raise (a raising observer is
  a bug in it; ``Observers`` logs and drops it rather than failing the request), must not
  keep ``rec.body`` past ``finished`` (it is the client's buffer).
- ``Attempt``, ``Outcome`` and ``Usage`` are read-only for observers too. They are plain slotted
  dataclasses, not frozen ones, because they are made on every request: a frozen dataclass's
  ``__init__`` measured 10x slower (8.7 vs 0.85 us for ten fields, loaded 2-core box).
- ``RequestRecord`` is filled in by the pipeline as it learns things (``model`` once the
  deployment is known, ``tenant`` once authenticated); observers read it, never write it,
  except ``rec.notes``, a per-request dict where an observer may keep its own state
  (a span, a reservation) keyed by its own name, and ``rec.upstream_traceparent``, which
  the tracing observer sets in ``started`` for the pipeline to send on.
- An event an observer has nothing to do on: mark its method ``@ignores`` (it is then never
  called; the fan-out is per request, so empty calls add up). An ``attempt`` that has nothing
  to do on an attempt that answered (outcome ``ok``): mark it ``@failed_attempts_only``; when
  every ``attempt`` taker is marked so (or there is none), ``Observers.wants_ok_attempts`` is
  False and the attempt loop does not even build the ``Attempt`` of an answering try.
- Timestamps are ``time.perf_counter()`` seconds (``t_start`` and the ``t`` arguments);
  ``started_unix`` is wall-clock for logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from inferplane.protocol.routes import Route, SurfaceName

__all__ = ["Attempt", "FinishedObserver", "Observers", "Outcome", "RequestObserver", "RequestRecord", "Usage",
           "failed_attempts_only", "ignores"]

log = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class RequestRecord:
    """One request as observers see it. Filled in by the pipeline; read-only for observers."""

    request_id: str
    surface: SurfaceName
    route: Route
    t_start: float
    """``time.perf_counter()`` when the request head was complete."""
    started_unix: float
    """``time.time()`` at the same moment (for logs)."""
    path: str
    body: bytes = b""
    """The request body as the client sent it (do not keep past ``finished``)."""
    model: str | None = None
    """The deployment name, once known (None for an unknown model or an unparsable body)."""
    stream: bool = False
    tenant: str | None = None
    """The authenticated tenant's name (None: no keys configured, or not authenticated)."""
    priority: str | None = None
    max_tokens: int | None = None
    """What the client asked for at most (None: not said), for token reservations."""
    session: str | None = None
    traceparent: str | None = None
    """The client's W3C ``traceparent`` header, if it sent one."""
    upstream_traceparent: str | None = None
    """The W3C ``traceparent`` to send to runtimes whose adapter says
    ``capabilities().traces`` (set by the tracing observer in ``started``: the gateway's span
    for this request as the parent; None: not traced, send nothing)."""
    notes: dict[str, Any] = field(default_factory=dict)
    """Per-request state an observer keeps for itself, under its own key."""


@dataclass(slots=True)
class Attempt:
    """One upstream try and how it ended."""

    endpoint_id: str
    deployment: str
    """The deployment that served it (differs from ``rec.model`` on a fallback)."""
    runtime: str
    policy: str
    """The routing policy that chose the endpoint."""
    reason: str
    """Why this endpoint (the policy's own words, e.g. ``prefix 12 blocks``, ``least load 3``)."""
    outcome: str
    """``ok`` (its answer went to the client), or the failure kind that made the gateway move
    on (``connect``, ``timeout``, ``frozen``, ``status_5xx``, ``invalid_response``,
    ``disconnect``, ``too_large``), ``stale_connection`` (a pooled connection the replica had
    closed: resent at once on a fresh one, no replica's fault) or ``request_fault`` (a 5xx the
    request turned out to cause: the same failure on the next replica; no replica's fault).
    A 5xx attempt is reported once its blame is settled, so after the attempts that settle it."""
    t_start: float
    t_end: float
    status: int | None = None
    """The upstream's HTTP status, if it answered."""
    detail: str = ""


@dataclass(slots=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)


@dataclass(slots=True)
class Outcome:
    """How a request ended, as the client saw it."""

    status: int
    """The status the client got (499: it went away first; a stream that started with 200 and
    then failed is 502 here, with ``error_code`` saying why)."""
    t_end: float
    error_code: str | None = None
    """The error body's ``code`` (``model_not_found``, ``rate_limited``, ``upstream_timeout``...)."""
    usage: Usage | None = None
    """What the runtime reported it used (None: it did not say, or no runtime was reached)."""
    ttft_s: float | None = None
    endpoint_id: str | None = None
    """The endpoint that answered (None: none did)."""
    runtime: str | None = None
    retries: int = 0
    queued_s: float = 0.0
    """Time spent held in the gateway (admission, or waiting for a replica) before the first attempt."""

    @property
    def ok(self) -> bool:
        return self.status < 400


class RequestObserver(Protocol):
    """See the module docstring for the contract."""

    def started(self, rec: RequestRecord) -> None: ...

    def attempt(self, rec: RequestRecord, attempt: Attempt) -> None: ...

    def first_token(self, rec: RequestRecord, t: float) -> None: ...

    def finished(self, rec: RequestRecord, outcome: Outcome) -> None: ...

    # Optional: ``def token_gap(self, rec: RequestRecord, gap_s: float) -> None`` (see the
    # module docstring). Called per streamed chunk: define it only if you need it.
    # A method that does nothing may be marked ``@ignores``: it is then never called.


F = TypeVar("F", bound=Callable[..., None])


def ignores(method: F) -> F:
    """Mark an observer's method as doing nothing: ``Observers`` then never calls it.

    For an observer that must define an event (the protocol has four) but has nothing to do
    on it; the per-request fan-out skips it instead of calling an empty method. Only for
    methods that truly do nothing (they are never called).
    """
    method.__inferplane_ignores__ = True  # type: ignore[attr-defined]
    return method


def failed_attempts_only(method: F) -> F:
    """Mark an observer's ``attempt`` as doing nothing for an attempt whose outcome is ``ok``:
    ``Observers`` then calls it only for the others (failures, ``stale_connection``,
    ``request_fault``). Every request that is answered has one ``ok`` attempt, so this spares
    a call per request, and, when no observer takes ``ok`` attempts, the ``Attempt`` itself."""
    method.__inferplane_failed_only__ = True  # type: ignore[attr-defined]
    return method


class FinishedObserver:
    """Base of an observer that needs only ``finished``: the other three events are marked
    ``@ignores`` here, so ``Observers`` never calls them (subclasses define ``finished``)."""

    __slots__ = ()

    @ignores
    def started(self, rec: RequestRecord) -> None:
        pass

    @ignores
    def attempt(self, rec: RequestRecord, attempt: Attempt) -> None:
        pass

    @ignores
    def first_token(self, rec: RequestRecord, t: float) -> None:
        pass


def _handlers(observers: tuple[RequestObserver, ...], event: str) -> tuple[Callable[..., None], ...]:
    out = []
    for o in observers:
        fn = getattr(o, event, None)
        if fn is not None and not getattr(fn, "__inferplane_ignores__", False):
            out.append(fn)
    return tuple(out)


class Observers:
    """Fans every event out to the observers it holds, in order; one that raises is logged
    (once per kind of error) and the others still run. An observer's methods marked
    ``@ignores`` are not called; an event no observer takes is a loop over an empty tuple."""

    __slots__ = ("_all", "_attempt", "_attempt_ok", "_finished", "_first_token", "_started", "_token_gap", "_warned",
                 "live", "wants_ok_attempts")

    def __init__(self, observers: tuple[RequestObserver, ...] = (), *, live: set[RequestRecord] | None = None) -> None:
        self._warned: set[tuple[str, str]] = set()
        self.live: set[RequestRecord] = set() if live is None else live
        """The requests started and not yet finished (in-flight gauges count them when read): kept
        here, in ``started`` and ``finished``, rather than by an observer of its own, since every
        request goes through both anyway (a ``started`` call per request spared). ``live``: the set
        to keep them in (``GatewayMetrics.live``)."""
        self._set(tuple(observers))

    def _set(self, observers: tuple[RequestObserver, ...]) -> None:
        self._all = observers
        self._started = _handlers(observers, "started")
        self._attempt = _handlers(observers, "attempt")
        self._attempt_ok = tuple(fn for fn in self._attempt if not getattr(fn, "__inferplane_failed_only__", False))
        self.wants_ok_attempts = bool(self._attempt_ok)
        """Whether any observer takes an ``attempt`` whose outcome is ``ok`` (the attempt loop
        reads it per request, an attribute, and builds no ``Attempt`` for an answering try when
        none does)."""
        self._first_token = _handlers(observers, "first_token")
        self._token_gap = _handlers(observers, "token_gap")
        self._finished = _handlers(observers, "finished")

    def add(self, observer: RequestObserver) -> None:
        self._set((*self._all, observer))

    @property
    def wants_gaps(self) -> bool:
        """Whether any observer takes ``token_gap`` (the relay skips timing chunks when none does)."""
        return bool(self._token_gap)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._all)

    def started(self, rec: RequestRecord) -> None:
        self.live.add(rec)
        for fn in self._started:
            try:
                fn(rec)
            except Exception as exc:
                self._broken(fn, "started", exc)

    def attempt(self, rec: RequestRecord, attempt: Attempt) -> None:
        for fn in self._attempt_ok if attempt.outcome == "ok" else self._attempt:
            try:
                fn(rec, attempt)
            except Exception as exc:
                self._broken(fn, "attempt", exc)

    def first_token(self, rec: RequestRecord, t: float) -> None:
        for fn in self._first_token:
            try:
                fn(rec, t)
            except Exception as exc:
                self._broken(fn, "first_token", exc)

    def token_gap(self, rec: RequestRecord, gap_s: float) -> None:
        for fn in self._token_gap:
            try:
                fn(rec, gap_s)
            except Exception as exc:
                self._broken(fn, "token_gap", exc)

    def finished(self, rec: RequestRecord, outcome: Outcome) -> None:
        self.live.discard(rec)
        for fn in self._finished:
            try:
                fn(rec, outcome)
            except Exception as exc:
                self._broken(fn, "finished", exc)

    def _broken(self, fn: Callable[..., None], event: str, exc: Exception) -> None:
        name = type(getattr(fn, "__self__", fn)).__name__
        key = (name, f"{event}:{type(exc).__name__}")
        if key not in self._warned:
            self._warned.add(key)
            log.error("request observer %s failed in %s: %r (further errors like it are not logged)",
                      name, event, exc)
