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
      attempt     CLIENT span per upstream try: inferplane.endpoint, .runtime, .deployment,
                  .routing.policy, .routing.reason, .attempt.number, .attempt.outcome,
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

Cost: spans are created on the event loop (tens of microseconds per request, measured in
``benchmarks/gateway_overhead.py --tracing``); a ``BatchSpanProcessor`` exports them from
its own thread, so no export ever blocks a request. With tracing off nothing here runs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from inferplane.config.observability import TracingConfig
from inferplane.observability.observer import Attempt, Outcome, RequestRecord
from inferplane.protocol.routes import Route

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

__all__ = ["INSTALL_HINT", "Tracing", "TracingUnavailable", "build_tracing", "format_traceparent"]

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'inferplane[tracing]'"

_OPERATION = {Route.CHAT: "chat", Route.COMPLETIONS: "text_completion", Route.EMBEDDINGS: "embeddings",
              Route.RESPONSES: "chat"}
"""Route -> gen_ai.operation.name (the conventions' well-known values)."""
_NOTE = "tracing"


class TracingUnavailable(RuntimeError):
    """``gateway.tracing`` is set but the OpenTelemetry SDK is not installed."""


def format_traceparent(trace_id: int, span_id: int, sampled: bool) -> str:
    """A W3C ``traceparent`` header value (version 00)."""
    return f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"


class _State:
    """What the observer keeps per request (in ``rec.notes['tracing']``)."""

    __slots__ = ("attempts", "last_outcome", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.attempts = 0
        self.last_outcome: str | None = None


class Tracing:
    """The tracing observer (module docstring). Event-loop bound; ``close`` flushes."""

    def __init__(self, provider: TracerProvider, tracer: Tracer) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self._tracer = tracer
        self._propagator = TraceContextTextMapPropagator()
        self._set_span = trace.set_span_in_context
        self._server = trace.SpanKind.SERVER
        self._client = trace.SpanKind.CLIENT
        self._error = trace.StatusCode.ERROR
        self._status = trace.Status

    # -- the observer --------------------------------------------------------------------

    def started(self, rec: RequestRecord) -> None:
        parent = self._propagator.extract({"traceparent": rec.traceparent}) if rec.traceparent else None
        op = _OPERATION.get(rec.route, str(rec.route))
        span = self._tracer.start_span(op, context=parent, kind=self._server, start_time=_ns(rec.started_unix),
                                       attributes={"gen_ai.operation.name": op, "http.request.method": "POST",
                                                   "url.path": rec.path, "inferplane.request_id": rec.request_id,
                                                   "inferplane.surface": str(rec.surface)})
        rec.notes[_NOTE] = _State(span)
        ctx = span.get_span_context()
        rec.upstream_traceparent = format_traceparent(ctx.trace_id, ctx.span_id, ctx.trace_flags.sampled)

    def attempt(self, rec: RequestRecord, attempt: Attempt) -> None:
        state: _State | None = rec.notes.get(_NOTE)
        if state is None or not state.span.is_recording():
            return
        state.attempts += 1
        attrs: dict[str, Any] = {
            "inferplane.endpoint": attempt.endpoint_id, "inferplane.runtime": attempt.runtime,
            "inferplane.deployment": attempt.deployment, "inferplane.routing.policy": attempt.policy,
            "inferplane.routing.reason": attempt.reason, "inferplane.attempt.number": state.attempts,
            "inferplane.attempt.outcome": attempt.outcome,
        }  # fmt: skip
        if state.last_outcome is not None:
            attrs["inferplane.attempt.retry_reason"] = state.last_outcome
        if attempt.status is not None:
            attrs["http.response.status_code"] = attempt.status
        span = self._tracer.start_span("attempt", context=self._set_span(state.span), kind=self._client,
                                       start_time=_at(rec, attempt.t_start), attributes=attrs)
        if attempt.outcome != "ok":
            span.set_status(self._status(self._error, f"{attempt.outcome}: {attempt.detail}"[:500]))
            span.set_attribute("error.type", attempt.outcome)
        else:
            state.span.set_attributes({"inferplane.routing.policy": attempt.policy,
                                       "inferplane.routing.reason": attempt.reason,
                                       "gen_ai.response.model": attempt.deployment})
        span.end(end_time=_at(rec, attempt.t_end))
        state.last_outcome = attempt.outcome

    def first_token(self, rec: RequestRecord, t: float) -> None:
        state: _State | None = rec.notes.get(_NOTE)
        if state is not None and state.span.is_recording():
            state.span.add_event("first_token", {"inferplane.ttft_s": t - rec.t_start}, timestamp=_at(rec, t))

    def finished(self, rec: RequestRecord, outcome: Outcome) -> None:
        state: _State | None = rec.notes.pop(_NOTE, None)
        if state is None:
            return
        span = state.span
        if span.is_recording():
            self._describe(span, rec, outcome)
        span.end(end_time=_at(rec, outcome.t_end))

    def _describe(self, span: Span, rec: RequestRecord, outcome: Outcome) -> None:
        attrs: dict[str, Any] = {"http.response.status_code": outcome.status, "inferplane.retries": outcome.retries,
                                 "inferplane.stream": rec.stream}
        if rec.model is not None:
            attrs["gen_ai.request.model"] = rec.model
            span.update_name(f"{_OPERATION.get(rec.route, str(rec.route))} {rec.model}")
        optional = {"gen_ai.request.max_tokens": rec.max_tokens, "inferplane.tenant": rec.tenant,
                    "inferplane.endpoint": outcome.endpoint_id, "inferplane.runtime": outcome.runtime,
                    "inferplane.ttft_s": outcome.ttft_s, "inferplane.queued_s": outcome.queued_s or None}
        usage = outcome.usage
        if usage is not None:
            optional |= {"gen_ai.usage.input_tokens": usage.prompt_tokens,
                         "gen_ai.usage.output_tokens": usage.completion_tokens,
                         "gen_ai.usage.cache_read.input_tokens": usage.cached_tokens}
        attrs.update({k: v for k, v in optional.items() if v is not None})
        if outcome.status >= 400:
            attrs["error.type"] = outcome.error_code or str(outcome.status)
        span.set_attributes(attrs)
        if outcome.status >= 500:
            span.set_status(self._status(self._error, outcome.error_code or str(outcome.status)))

    def close(self) -> None:
        """Export what is buffered (bounded by the exporter's timeout) and stop the export thread."""
        self.provider.shutdown()


def build_tracing(cfg: TracingConfig, *, exporter: SpanExporter | None = None) -> Tracing:
    """The tracing observer for ``cfg``, exporting to its collector (or to ``exporter``).

    Raises ``TracingUnavailable`` (with the install command) without the SDK.
    """
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError as exc:
        raise TracingUnavailable(f"gateway.tracing needs the OpenTelemetry SDK and OTLP exporter, which are not "
                                 f"installed ({exc.name or exc}): {INSTALL_HINT}") from exc
    from inferplane import __version__

    provider = TracerProvider(
        resource=Resource.create({"service.name": cfg.service_name, "service.version": __version__}),
        sampler=ParentBased(TraceIdRatioBased(cfg.sample_ratio)),
    )
    if exporter is None:
        exporter = OTLPSpanExporter(endpoint=cfg.traces_url, timeout=cfg.export_timeout_s)
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=cfg.max_queue_spans,
                                                   export_timeout_millis=cfg.export_timeout_s * 1000))
    return Tracing(provider, provider.get_tracer("inferplane.gateway", __version__))


def _ns(unix_s: float) -> int:
    return int(unix_s * 1e9)


def _at(rec: RequestRecord, t: float) -> int:
    """A ``perf_counter`` time of this request as epoch nanoseconds."""
    return int((rec.started_unix + (t - rec.t_start)) * 1e9)
