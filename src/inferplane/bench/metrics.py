"""Per-request and per-run metrics: pure functions of ``RequestRecord`` values.

Definitions (printed in every report; see ``DEFINITIONS``):

- TTFT = t_first - t_send; TTFT_sched = t_first - t_sched (includes client-side queueing).
- E2E = t_close - t_send; E2E_sched = t_close - t_sched.
- TPOT = (t_last - t_first) / (OSL - 1), for OSL >= 2 and streamed responses only.
- ICL = gaps between consecutive content chunks, pooled over requests.
- NTPOT = E2E / OSL. Tokens per chunk = OSL / content chunks.
- Duration D = last t_last (t_close when no content arrived) - first t_send.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from inferplane.bench.records import RequestRecord
from inferplane.bench.slo import SloTarget
from inferplane.bench.stats import Distribution, percentile, summarize
from inferplane.bench.timeseries import (
    SteadyWindow,
    TimeSeries,
    build_series,
    peak_concurrency,
    steady_window,
)

__all__ = [
    "DEFINITIONS",
    "RequestMetrics",
    "RunMetrics",
    "TokenAccounting",
    "compute_run_metrics",
    "is_good",
    "request_metrics",
]

NS = 1e9
ESTIMATE_DISAGREEMENT = 0.25
"""Client estimate and server count 'disagree' when they differ by more than this fraction."""

DEFINITIONS: dict[str, str] = {
    "TTFT": "t_first - t_send; t_first = first chunk with non-empty text, reasoning or tool-call delta "
    "(role-only, empty and usage-only chunks do not count)",
    "TTFT_sched": "t_first - t_sched (t_sched = when the load plan wanted the request sent)",
    "E2E": "t_close - t_send (response fully read)",
    "E2E_sched": "t_close - t_sched",
    "TPOT": "(t_last - t_first) / (OSL - 1), OSL >= 2, streamed only (vLLM 'TPOT'; AIPerf/GuideLLM 'ITL')",
    "ICL": "gap between consecutive content chunks, pooled over requests (vLLM/SGLang 'ITL')",
    "NTPOT": "E2E / OSL (inference-perf)",
    "OSL": "usage.completion_tokens; if absent a client estimate of the whole output (never chunk counts)",
    "Duration": "last t_last - first t_send",
    "Goodput": "requests that succeeded and met every per-request SLO threshold / Duration",
    "Concurrency": "mean = sum(E2E) / Duration; peak = max requests in flight",
    "Error-adjusted": "percentiles with failed requests counted as +inf",
    "Steady state": "window from the first completion to the last send (excludes ramp-up and drain)",
}


@dataclass(frozen=True, slots=True)
class RequestMetrics:
    """Derived latencies of one request, in seconds (``None`` where undefined)."""

    ttft_s: float | None
    ttft_sched_s: float | None
    e2e_s: float
    e2e_sched_s: float
    tpot_s: float | None
    ntpot_s: float | None
    icl_s: tuple[float, ...]
    tokens_per_chunk: float | None


def request_metrics(rec: RequestRecord) -> RequestMetrics:
    """Metrics of one record (failed ones too: E2E is the time to failure)."""
    ttft = (rec.t_first_ns - rec.t_send_ns) / NS if rec.t_first_ns is not None else None
    ttft_sched = (rec.t_first_ns - rec.t_sched_ns) / NS if rec.t_first_ns is not None else None
    osl = rec.osl or 0
    tpot = None
    if rec.stream and osl >= 2 and rec.t_first_ns is not None and rec.t_last_ns is not None:
        tpot = (rec.t_last_ns - rec.t_first_ns) / NS / (osl - 1)
    times = rec.chunk_times_ns
    icl = tuple((b - a) / NS for a, b in itertools.pairwise(times)) if rec.stream else ()
    e2e = (rec.t_close_ns - rec.t_send_ns) / NS
    return RequestMetrics(
        ttft_s=ttft,
        ttft_sched_s=ttft_sched,
        e2e_s=e2e,
        e2e_sched_s=(rec.t_close_ns - rec.t_sched_ns) / NS,
        tpot_s=tpot,
        ntpot_s=e2e / osl if osl > 0 else None,
        icl_s=icl,
        tokens_per_chunk=osl / len(times) if times and osl > 0 else None,
    )


def is_good(rec: RequestRecord, m: RequestMetrics, slos: Sequence[SloTarget]) -> bool:
    """Succeeded and met every per-request threshold (TPOT unchecked when undefined)."""
    if not rec.ok:
        return False
    for slo in slos:
        value = {"ttft": m.ttft_s, "tpot": m.tpot_s, "e2e": m.e2e_s}[slo.metric]
        if slo.metric == "ttft" and value is None:
            return False
        if value is not None and value > slo.threshold_s:
            return False
    return True


@dataclass(frozen=True, slots=True)
class TokenAccounting:
    """Where token counts came from, and how far the client estimate is from the server."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    osl_sources: dict[str, int]
    isl_sources: dict[str, int]
    osl_disagreements: int
    """Requests whose client estimate differs from usage by more than 25%."""
    osl_estimate_ratio: float | None
    """Sum of client estimates / sum of server counts, over requests that have both."""


@dataclass(frozen=True, slots=True)
class RunMetrics:
    """Everything measured in one run. Latency distributions are in seconds."""

    n_requests: int
    n_ok: int
    n_failed: int
    duration_s: float
    request_throughput: float
    output_throughput: float
    input_throughput: float
    uncached_input_throughput: float
    total_token_throughput: float
    peak_output_throughput_1s: float
    goodput_rps: float | None
    slo_attainment: float | None
    slo_met: dict[str, bool]
    concurrency_mean: float
    concurrency_peak: int
    errors: dict[str, int]
    ttft: Distribution
    ttft_sched: Distribution
    e2e: Distribution
    e2e_sched: Distribution
    tpot: Distribution
    icl: Distribution
    ntpot: Distribution
    tokens_per_chunk: Distribution
    isl: Distribution
    osl: Distribution
    ttft_error_adjusted: Distribution
    e2e_error_adjusted: Distribution
    schedule_lag: Distribution
    offered_rps: float | None
    achieved_rps: float | None
    tokens: TokenAccounting
    steady: SteadyWindow | None
    series: TimeSeries
    any_streamed: bool


def compute_run_metrics(
    records: Sequence[RequestRecord], slos: Sequence[SloTarget] = ()
) -> RunMetrics:
    """Aggregate a run. Raises ``ValueError`` on an empty run."""
    if not records:
        raise ValueError("no requests were recorded")
    per = [request_metrics(r) for r in records]
    ok = [(r, m) for r, m in zip(records, per, strict=True) if r.ok]
    t_start = min(r.t_send_ns for r in records)
    ends = [r.t_last_ns if r.t_last_ns is not None else r.t_close_ns for r in records]
    duration = max(max(ends) - t_start, 1) / NS
    out_tokens = sum(r.osl or 0 for r, _ in ok)
    in_tokens = sum(r.isl or 0 for r, _ in ok)
    cached = sum(r.cached_tokens or 0 for r, _ in ok)
    good = sum(1 for r, m in zip(records, per, strict=True) if is_good(r, m, slos))
    inf = math.inf
    ttft_adj: list[float] = [
        m.ttft_s if (r.ok and m.ttft_s is not None) else inf
        for r, m in zip(records, per, strict=True)
    ]
    e2e_adj: list[float] = [m.e2e_s if r.ok else inf for r, m in zip(records, per, strict=True)]
    tpot_adj: list[float] = [
        m.tpot_s if (r.ok and m.tpot_s is not None) else inf
        for r, m in zip(records, per, strict=True)
        if m.tpot_s is not None or not r.ok
    ]
    slo_met: dict[str, bool] = {}
    for slo in slos:
        pool: list[float] = {"ttft": ttft_adj, "tpot": tpot_adj, "e2e": e2e_adj}[slo.metric]
        value = percentile(sorted(pool), slo.percentile)
        slo_met[slo.label()] = bool(value <= slo.threshold_s)
    series = build_series(records)
    return RunMetrics(
        n_requests=len(records),
        n_ok=len(ok),
        n_failed=len(records) - len(ok),
        duration_s=duration,
        request_throughput=len(ok) / duration,
        output_throughput=out_tokens / duration,
        input_throughput=in_tokens / duration,
        uncached_input_throughput=(in_tokens - cached) / duration,
        total_token_throughput=(in_tokens + out_tokens) / duration,
        peak_output_throughput_1s=max(series.output_tokens, default=0.0),
        goodput_rps=good / duration if slos else None,
        slo_attainment=good / len(records) if slos else None,
        slo_met=slo_met,
        concurrency_mean=sum(m.e2e_s for m in per) / duration,
        concurrency_peak=peak_concurrency(records),
        errors=dict(Counter(r.error_class or "unknown" for r in records if not r.ok)),
        ttft=summarize(m.ttft_s for _, m in ok if m.ttft_s is not None),
        ttft_sched=summarize(m.ttft_sched_s for _, m in ok if m.ttft_sched_s is not None),
        e2e=summarize(m.e2e_s for _, m in ok),
        e2e_sched=summarize(m.e2e_sched_s for _, m in ok),
        tpot=summarize(m.tpot_s for _, m in ok if m.tpot_s is not None),
        icl=summarize(g for _, m in ok for g in m.icl_s),
        ntpot=summarize(m.ntpot_s for _, m in ok if m.ntpot_s is not None),
        tokens_per_chunk=summarize(
            m.tokens_per_chunk for _, m in ok if m.tokens_per_chunk is not None
        ),
        isl=summarize(float(r.isl) for r, _ in ok if r.isl is not None),
        osl=summarize(float(r.osl) for r, _ in ok if r.osl is not None),
        ttft_error_adjusted=summarize(ttft_adj),
        e2e_error_adjusted=summarize(e2e_adj),
        schedule_lag=summarize((r.t_send_ns - r.t_sched_ns) / NS for r in records),
        offered_rps=_rate([r.t_sched_ns for r in records]),
        achieved_rps=_rate([r.t_send_ns for r in records]),
        tokens=_accounting(records),
        steady=steady_window(records),
        series=series,
        any_streamed=any(r.stream for r in records),
    )


def _rate(times_ns: list[int]) -> float | None:
    """(n - 1) / span: arrivals per second over the span of the given instants."""
    if len(times_ns) < 2:
        return None
    span = (max(times_ns) - min(times_ns)) / NS
    return (len(times_ns) - 1) / span if span > 0 else None


def _accounting(records: Sequence[RequestRecord]) -> TokenAccounting:
    both = [r for r in records if r.ok and r.osl_source == "usage"]
    server = sum(r.osl or 0 for r in both)
    client = sum(r.osl_client for r in both)
    disagree = sum(
        1 for r in both if r.osl and abs(r.osl_client - r.osl) > ESTIMATE_DISAGREEMENT * r.osl
    )
    ok = [r for r in records if r.ok]
    return TokenAccounting(
        input_tokens=sum(r.isl or 0 for r in ok),
        output_tokens=sum(r.osl or 0 for r in ok),
        cached_input_tokens=sum(r.cached_tokens or 0 for r in ok),
        osl_sources=dict(Counter(r.osl_source for r in ok)),
        isl_sources=dict(Counter(r.isl_source for r in ok)),
        osl_disagreements=disagree,
        osl_estimate_ratio=client / server if server else None,
    )
