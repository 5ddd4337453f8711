"""OpenTelemetry traces of requests, exported over OTLP/HTTP: a request observer.

Off unless ``gateway.tracing`` is set; then ``serve`` builds one :class:`Tracing` and adds
it to the gateway's observers. The SDK is an optional extra (``pip install
'inferplane[tracing]'``): :func:`build_tracing` raises ``TracingUnavailable`` with that
command when it is missing, so a configured-but-impossible trace fails at start.

What one request gives (names follow OpenTelemetry's GenAI and HTTP conventions where they
have one; ours are under ``inferplane.``)::

    chat smollm2                        SERVER span, parent: the client's traceparent, if any
      attributes  gen_ai.operation.name, gen_ai.request.model, gen_ai.response.model,
                  gen_ai.request.max_tokens, gen_ai.usage.input_tokens / output_tokens /
                  cache_read.input_tokens, http.request.method, url.path,
                  http.response.status_code, error.type (failures), inferplane.request_id,
                  .surface, .tenant, .endpoint, .runtime, .retries, .queued_s, .ttft_s,
                  .routing.policy, .routing.reason (the attempt that answered)
      event       first_token (at the moment the first content went to the client)
      attempt     CLIENT span per upstream try: inferplane.endpoint, .runtime, .deployment
                  (a fallback's), .routing.policy, .routing.reason (if any), .attempt.number, .attempt.outcome,
                  .attempt.retry_reason (the previous try's outcome), http.response.status_code;
                  status ERROR when it failed

The name is ``{gen_ai.operation.name} {model}`` once the model is known (``chat`` when the
request never named a served one). Span status is ERROR for 5xx answers only (a 4xx is the
client's, per the HTTP server conventions).

Propagation: ``started`` sets ``rec.upstream_traceparent`` to this request's span; the
pipeline sends it as ``traceparent`` to runtimes whose adapter says
``capabilities().traces`` (vLLM reads it in ``vllm/tracing.py`` when started with
``--otlp-traces-endpoint``), so their spans join the same trace. Attempts are reported
once they ended, so their spans are written afterwards with their real start and end
times; the runtime's span is therefore a child of the request span, beside the attempt.

Cost on the event loop: ids and the sampling decision in ``started`` (the
``TraceIdRatioBased`` rule, parent-based), and in ``finished`` the finished spans are made
directly as the SDK's ``ReadableSpan`` with plain attribute dicts and handed to a
``BatchSpanProcessor``, whose own thread encodes and exports them - no export and no
attribute validation pass on the loop (``benchmarks/observer_overhead.py`` measures it).
An unsampled request costs the ids only. With tracing off nothing here runs. The export
thread's protobuf encoding (the OTLP exporter's, in Python) is the larger cost, ~5 us per
attribute: it runs off the loop but in this process, so it is in the CPU per request.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any

from inferplane.config.observability import TracingConfig
from inferplane.observability.observer import Attempt, Outcome, RequestRecord
from inferplane.protocol.routes import Route

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["INSTALL_HINT", "Tracing", "TracingUnavailable", "build_tracing", "format_traceparent",
           "parse_traceparent"]

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'inferplane[tracing]'"

_OPERATION = {Route.CHAT: "chat", Route.COMPLETIONS: "text_completion", Route.EMBEDDINGS: "embeddings",
              Route.RESPONSES: "chat"}
"""Route -> gen_ai.operation.name (the conventions' well-known values)."""
_NOTE = "tracing"
_LOW64 = (1 << 64) - 1


class TracingUnavailable(RuntimeError):
    """``gateway.tracing`` is set but the OpenTelemetry SDK is not installed."""


def format_traceparent(trace_id: int, span_id: int, sampled: bool) -> str:
    """A W3C ``traceparent`` header value (version 00)."""
    return f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"


def parse_traceparent(value: str) -> tuple[int, int, bool] | None:
    """``(trace_id, parent span_id, sampled)`` from a W3C ``traceparent``, or None when it is
    not a valid one (then the request starts a new trace, as the spec says)."""
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff" or (parts[0] == "00" and len(parts) != 4):
        return None
    version, trace, span, flags = parts[:4]
    if len(trace) != 32 or len(span) != 16 or len(flags) != 2:
        return None
    try:
        int(version, 16)
        trace_id, span_id, bits = int(trace, 16), int(span, 16), int(flags, 16)
    except ValueError:
        return None
    if not trace_id or not span_id or trace != trace.lower() or span != span.lower():
        return None
    return trace_id, span_id, bool(bits & 1)


class _State:
    """What the observer keeps per request (in ``rec.notes['tracing']``), sampled requests only."""

    __slots__ = ("attempts", "first_token", "parent", "span_id", "trace_id")

    def __init__(self, trace_id: int, span_id: int, parent: int | None) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent = parent
        self.attempts: list[Attempt] = []
        self.first_token: float | None = None


class Tracing:
    """The tracing observer (module docstring). Event-loop bound; ``close`` flushes."""

    def __init__(self, processor: SpanProcessor, *, sample_ratio: float, resource: Any, scope: Any) -> None:
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        self.processor = processor
        self._bound = round(sample_ratio * (1 << 64))  # TraceIdRatioBased: sampled if low 64 bits < bound
        self._resource = resource
        self._scope = scope
        self._span, self._event, self._ctx = ReadableSpan, Event, SpanContext
        self._sampled = TraceFlags(TraceFlags.SAMPLED)
        self._server, self._client = SpanKind.SERVER, SpanKind.CLIENT
        self._ok = Status(StatusCode.UNSET)
        self._status, self._error = Status, StatusCode.ERROR
        self._bits = random.getrandbits

    # -- the observer --------------------------------------------------------------------

    def started(self, rec: RequestRecord) -> None:
        parent = parse_traceparent(rec.traceparent) if rec.traceparent else None
        span_id = self._bits(64) or 1
        if parent is not None:
            trace_id, parent_id, sampled = parent
        else:
            trace_id, parent_id = self._bits(128) or 1, None
            sampled = (trace_id & _LOW64) < self._bound
        rec.upstream_traceparent = format_traceparent(trace_id, span_id, sampled)
        if sampled:
            rec.notes[_NOTE] = _State(trace_id, span_id, parent_id)

    def attempt(self, rec: RequestRecord, attempt: Attempt) -> None:
        state: _State | None = rec.notes.get(_NOTE)
        if state is not None:
            state.attempts.append(attempt)

    def first_token(self, rec: RequestRecord, t: float) -> None:
        state: _State | None = rec.notes.get(_NOTE)
        if state is not None:
            state.first_token = t

    def finished(self, rec: RequestRecord, outcome: Outcome) -> None:
        state: _State | None = rec.notes.pop(_NOTE, None)
        if state is None:
            return
        me = self._ctx(state.trace_id, state.span_id, False, self._sampled)
        parent = None if state.parent is None else self._ctx(state.trace_id, state.parent, True, self._sampled)
        on_end = self.processor.on_end
        answered = None
        previous = None
        for n, a in enumerate(state.attempts, 1):
            if a.outcome == "ok":
                answered = a
            on_end(self._attempt_span(rec, me, a, n, previous))
            previous = a.outcome
        on_end(self._request_span(rec, outcome, me, parent, state, answered))

    def _attempt_span(self, rec: RequestRecord, parent: Any, a: Attempt, n: int, previous: str | None) -> Any:
        attrs: dict[str, Any] = {
            "inferplane.endpoint": a.endpoint_id, "inferplane.runtime": a.runtime,
            "inferplane.routing.policy": a.policy, "inferplane.attempt.number": n,
            "inferplane.attempt.outcome": a.outcome,
        }  # fmt: skip
        # what would repeat the request span's is left out: each attribute costs the exporter ~5 us
        if a.reason:
            attrs["inferplane.routing.reason"] = a.reason
        if a.deployment != rec.model:
            attrs["inferplane.deployment"] = a.deployment  # a fallback
        if previous is not None:
            attrs["inferplane.attempt.retry_reason"] = previous
        if a.status is not None:
            attrs["http.response.status_code"] = a.status
        status = self._ok
        if a.outcome != "ok":
            attrs["error.type"] = a.outcome
            status = self._status(self._error, f"{a.outcome}: {a.detail}"[:500])
        ctx = self._ctx(parent.trace_id, self._bits(64) or 1, False, self._sampled)
        return self._span("attempt", ctx, parent, self._resource, attrs, kind=self._client, status=status,
                          start_time=_at(rec, a.t_start), end_time=_at(rec, a.t_end),
                          instrumentation_scope=self._scope)

    def _request_span(self, rec: RequestRecord, outcome: Outcome, me: Any, parent: Any, state: _State,
                      answered: Attempt | None) -> Any:
        op = _OPERATION.get(rec.route, str(rec.route))
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": op, "http.request.method": "POST", "url.path": rec.path,
            "http.response.status_code": outcome.status, "inferplane.request_id": rec.request_id,
            "inferplane.surface": rec.surface.value, "inferplane.retries": outcome.retries,
            "inferplane.stream": rec.stream,
        }  # fmt: skip
        name = op
        if rec.model is not None:
            attrs["gen_ai.request.model"] = rec.model
            name = f"{op} {rec.model}"
        optional = {"gen_ai.request.max_tokens": rec.max_tokens, "inferplane.tenant": rec.tenant,
                    "inferplane.endpoint": outcome.endpoint_id, "inferplane.runtime": outcome.runtime,
                    "inferplane.ttft_s": outcome.ttft_s, "inferplane.queued_s": outcome.queued_s or None}
        if answered is not None:
            optional |= {"gen_ai.response.model": answered.deployment, "inferplane.routing.policy": answered.policy,
                         "inferplane.routing.reason": answered.reason or None}
        usage = outcome.usage
        if usage is not None:
            optional |= {"gen_ai.usage.input_tokens": usage.prompt_tokens,
                         "gen_ai.usage.output_tokens": usage.completion_tokens,
                         "gen_ai.usage.cache_read.input_tokens": usage.cached_tokens}
        for k, v in optional.items():
            if v is not None:
                attrs[k] = v
        status = self._ok
        if outcome.status >= 400:
            attrs["error.type"] = outcome.error_code or str(outcome.status)
            if outcome.status >= 500:  # a 4xx is the client's (HTTP server span conventions)
                status = self._status(self._error, outcome.error_code or str(outcome.status))
        events: tuple[Any, ...] = ()
        if state.first_token is not None:
            events = (self._event("first_token", {"inferplane.ttft_s": state.first_token - rec.t_start},
                                  _at(rec, state.first_token)),)
        return self._span(name, me, parent, self._resource, attrs, events, kind=self._server, status=status,
                          start_time=int(rec.started_unix * 1e9), end_time=_at(rec, outcome.t_end),
                          instrumentation_scope=self._scope)

    def close(self) -> None:
        """Export what is buffered (bounded by the exporter's timeout) and stop the export thread."""
        self.processor.shutdown()


def build_tracing(cfg: TracingConfig, *, exporter: SpanExporter | None = None) -> Tracing:
    """The tracing observer for ``cfg``, exporting to its collector (or to ``exporter``).

    Raises ``TracingUnavailable`` (with the install command) without the SDK.
    """
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise TracingUnavailable(f"gateway.tracing needs the OpenTelemetry SDK and OTLP exporter, which are not "
                                 f"installed ({exc.name or exc}): {INSTALL_HINT}") from exc
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from inferplane import __version__

    if exporter is None:
        exporter = OTLPSpanExporter(endpoint=cfg.traces_url, timeout=cfg.export_timeout_s)
    processor = BatchSpanProcessor(exporter, max_queue_size=cfg.max_queue_spans,
                                   export_timeout_millis=cfg.export_timeout_s * 1000)
    resource = Resource.create({"service.name": cfg.service_name, "service.version": __version__})
    return Tracing(processor, sample_ratio=cfg.sample_ratio, resource=resource,
                   scope=InstrumentationScope("inferplane.gateway", __version__))


def _at(rec: RequestRecord, t: float) -> int:
    """A ``perf_counter`` time of this request as epoch nanoseconds."""
    return int((rec.started_unix + (t - rec.t_start)) * 1e9)
