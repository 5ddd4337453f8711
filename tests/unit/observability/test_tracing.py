"""The tracing observer, driven with request records, exporting over OTLP/HTTP to a receiver."""

from __future__ import annotations

import builtins

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the tracing extra")

from inferplane.config.observability import TracingConfig
from inferplane.observability.observer import Attempt, Observers, Outcome, RequestRecord, Usage
from inferplane.observability.tracing import TracingUnavailable, build_tracing
from inferplane.protocol.routes import Route, SurfaceName
from otlp_receiver import OtlpReceiver  # tests/ is on sys.path (tests/conftest.py)

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
T0_UNIX = 1_796_126_400.0


def _rec(rid: str, traceparent: str | None = None, model: str | None = "smollm2") -> RequestRecord:
    return RequestRecord(request_id=rid, surface=SurfaceName.OPENAI, route=Route.CHAT, t_start=10.0,
                         started_unix=T0_UNIX, path="/v1/chat/completions", body=b"{}", model=model,
                         stream=True, tenant="search-team", max_tokens=32, traceparent=traceparent)


def _attempt(ep: str, outcome: str, t0: float, t1: float, status: int | None) -> Attempt:
    return Attempt(endpoint_id=ep, deployment="smollm2", runtime="vllm", policy="prefix",
                   reason="prefix 3 blocks" if outcome == "ok" else "least load 0", outcome=outcome,
                   t_start=t0, t_end=t1, status=status, detail="boom" if outcome != "ok" else "")


def test_a_request_with_a_retry_gives_a_server_span_with_attempt_children() -> None:
    with OtlpReceiver() as rx:
        tracing = build_tracing(TracingConfig(otlp_endpoint=rx.endpoint))
        obs = Observers((tracing,))
        rec = _rec("req-1", traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")
        obs.started(rec)
        sent = rec.upstream_traceparent
        obs.attempt(rec, _attempt("smollm2-0", "status_5xx", 10.001, 10.05, 500))
        obs.attempt(rec, _attempt("smollm2-1", "ok", 10.06, 10.10, 200))
        obs.first_token(rec, 10.25)
        obs.finished(rec, Outcome(status=200, t_end=11.0, usage=Usage(412, 32, 256), ttft_s=0.25,
                                  endpoint_id="smollm2-1", runtime="vllm", retries=1))
        tracing.close()  # flushes the batch
        spans = rx.wait_for(lambda s: len(s) >= 3)
    assert "tracing" not in rec.notes  # the observer cleaned up after itself
    (root,) = [s for s in spans if s.name == "chat smollm2"]
    attempts = sorted((s for s in spans if s.name == "attempt"), key=lambda s: s.start_ns)
    assert len(spans) == 3 and len(attempts) == 2
    # the client's trace continues; the gateway span is its child, the attempts the gateway's
    assert root.trace_id == CLIENT_TRACE and root.parent_span_id == CLIENT_SPAN
    assert all(a.trace_id == CLIENT_TRACE and a.parent_span_id == root.span_id for a in attempts)
    assert sent == f"00-{CLIENT_TRACE}-{root.span_id}-01"
    assert root.kind == 2 and attempts[0].kind == 3  # SERVER, CLIENT
    a = root.attributes
    assert {k: a[k] for k in ("gen_ai.operation.name", "gen_ai.request.model", "gen_ai.response.model",
                              "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
                              "gen_ai.usage.cache_read.input_tokens", "gen_ai.request.max_tokens",
                              "http.response.status_code", "inferplane.retries", "inferplane.tenant",
                              "inferplane.endpoint", "inferplane.routing.policy", "inferplane.routing.reason")} == {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "smollm2", "gen_ai.response.model": "smollm2",
        "gen_ai.usage.input_tokens": 412, "gen_ai.usage.output_tokens": 32,
        "gen_ai.usage.cache_read.input_tokens": 256, "gen_ai.request.max_tokens": 32,
        "http.response.status_code": 200, "inferplane.retries": 1, "inferplane.tenant": "search-team",
        "inferplane.endpoint": "smollm2-1", "inferplane.routing.policy": "prefix",
        "inferplane.routing.reason": "prefix 3 blocks"}
    assert root.status_code == 0  # unset: the request succeeded
    assert root.start_ns == int(T0_UNIX * 1e9) and root.end_ns - root.start_ns == pytest.approx(1e9, rel=1e-6)
    ((ev_name, ev_t, ev_attrs),) = root.events
    assert ev_name == "first_token" and ev_t - root.start_ns == pytest.approx(0.25e9, rel=1e-6)
    assert ev_attrs["inferplane.ttft_s"] == pytest.approx(0.25)
    failed, ok = attempts
    assert failed.attributes["inferplane.endpoint"] == "smollm2-0" and failed.status_code == 2  # ERROR
    assert failed.attributes["inferplane.attempt.outcome"] == "status_5xx"
    assert failed.attributes["http.response.status_code"] == 500
    assert ok.attributes["inferplane.attempt.retry_reason"] == "status_5xx"
    assert ok.attributes["inferplane.attempt.number"] == 2 and ok.attributes["inferplane.runtime"] == "vllm"
    assert ok.start_ns - root.start_ns == pytest.approx(0.06e9, rel=1e-4)
    assert root.resource["service.name"] == "inferplane"


def test_a_new_trace_without_a_client_traceparent_and_errors_marked() -> None:
    with OtlpReceiver() as rx:
        tracing = build_tracing(TracingConfig(otlp_endpoint=rx.endpoint + "/v1/traces", service_name="gw-eu"))
        obs = Observers((tracing,))
        unknown = _rec("req-2", model=None)
        obs.started(unknown)
        obs.finished(unknown, Outcome(status=404, t_end=10.001, error_code="model_not_found"))
        failed = _rec("req-3")
        obs.started(failed)
        obs.attempt(failed, _attempt("smollm2-0", "timeout", 10.0, 10.5, None))
        obs.finished(failed, Outcome(status=504, t_end=10.6, error_code="upstream_timeout", retries=0))
        tracing.close()
        spans = rx.wait_for(lambda s: len(s) >= 3)
    by_id = {s.attributes.get("inferplane.request_id"): s for s in spans if s.name != "attempt"}
    nf, to = by_id["req-2"], by_id["req-3"]
    assert nf.name == "chat" and nf.parent_span_id == "" and nf.status_code == 0  # a 4xx is not our error
    assert nf.attributes["error.type"] == "model_not_found" and "gen_ai.request.model" not in nf.attributes
    assert to.status_code == 2 and to.attributes["error.type"] == "upstream_timeout"
    assert nf.trace_id != to.trace_id and nf.resource["service.name"] == "gw-eu"


def test_sampling_zero_records_nothing_but_still_propagates_unsampled() -> None:
    with OtlpReceiver() as rx:
        tracing = build_tracing(TracingConfig(otlp_endpoint=rx.endpoint, sample_ratio=0.0))
        obs = Observers((tracing,))
        rec = _rec("req-4")
        obs.started(rec)
        obs.attempt(rec, _attempt("smollm2-0", "ok", 10.0, 10.1, 200))
        obs.finished(rec, Outcome(status=200, t_end=10.2))
        sampled = _rec("req-5", traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")  # the client's choice wins
        obs.started(sampled)
        obs.finished(sampled, Outcome(status=200, t_end=10.2))
        tracing.close()
        spans = rx.wait_for(lambda s: len(s) >= 1, timeout_s=5)
    assert rec.upstream_traceparent is not None and rec.upstream_traceparent.endswith("-00")
    assert [s.attributes["inferplane.request_id"] for s in spans] == ["req-5"]


def test_without_the_sdk_configuring_tracing_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_otel(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("opentelemetry"):
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_otel)
    with pytest.raises(TracingUnavailable, match=r"pip install 'inferplane\[tracing\]'"):
        build_tracing(TracingConfig())


@pytest.mark.parametrize("header", [
    "", "garbage", f"00-{'0' * 32}-{CLIENT_SPAN}-01", f"00-{CLIENT_TRACE}-{'0' * 16}-01",
    f"ff-{CLIENT_TRACE}-{CLIENT_SPAN}-01", f"00-{CLIENT_TRACE.upper()}-{CLIENT_SPAN}-01",
    f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01-extra", f"00-{CLIENT_TRACE[:-1]}x-{CLIENT_SPAN}-01",
])
def test_an_invalid_traceparent_starts_a_new_trace(header: str) -> None:
    from inferplane.observability.tracing import parse_traceparent

    assert parse_traceparent(header) is None
    with OtlpReceiver() as rx:
        tracing = build_tracing(TracingConfig(otlp_endpoint=rx.endpoint))
        rec = _rec("bad", traceparent=header)
        tracing.started(rec)
        tracing.finished(rec, Outcome(status=200, t_end=10.1))
        tracing.close()
        (span,) = rx.wait_for(lambda s: len(s) >= 1)
    assert span.parent_span_id == "" and span.trace_id != CLIENT_TRACE


def test_a_future_version_traceparent_is_read_by_its_version_00_fields() -> None:
    from inferplane.observability.tracing import parse_traceparent

    assert parse_traceparent(f"01-{CLIENT_TRACE}-{CLIENT_SPAN}-00-more") == (
        int(CLIENT_TRACE, 16), int(CLIENT_SPAN, 16), False)
