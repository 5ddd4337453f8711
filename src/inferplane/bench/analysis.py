"""From a finished load to a ``RunOutcome``: metrics plus the warnings a reader must see."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from inferplane.bench.metrics import RunMetrics, compute_run_metrics
from inferplane.bench.records import RequestRecord
from inferplane.bench.runner import LoadConfig, LoadResult
from inferplane.bench.slo import SloTarget

__all__ = ["CPU_SATURATED_PCT", "LAG_P99_WARN_S", "RunOutcome", "analyze", "run_warnings"]

CPU_SATURATED_PCT = 90.0
"""A client worker above this CPU share may have delayed sends or reads."""
LAG_P99_WARN_S = 0.010
"""Schedule lag p99 above this means the client did not keep the plan (open loop)."""


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """One measured run: its load, records, metrics and warnings."""

    label: str
    load: LoadConfig
    records: tuple[RequestRecord, ...]
    metrics: RunMetrics
    client_cpu_pct: tuple[float, ...]
    warnings: tuple[str, ...]


def analyze(
    label: str, load: LoadConfig, result: LoadResult, slos: Sequence[SloTarget] = ()
) -> RunOutcome:
    """Compute metrics and warnings of one load result."""
    m = compute_run_metrics(result.records, slos)
    return RunOutcome(
        label,
        load,
        result.records,
        m,
        result.worker_cpu_pct,
        run_warnings(m, load, result.worker_cpu_pct),
    )


def run_warnings(m: RunMetrics, load: LoadConfig, cpu_pct: Sequence[float]) -> tuple[str, ...]:
    """Human-readable warnings about the validity of a run (empty when all is well)."""
    out: list[str] = []
    hot = [c for c in cpu_pct if c > CPU_SATURATED_PCT]
    if hot:
        out.append(
            f"client saturated: a worker used {max(hot):.0f}% CPU (> {CPU_SATURATED_PCT:.0f}%); "
            "latencies include client delay - add --workers or lower the load"
        )
    open_loop = load.mode in ("open", "stages", "trace", "burst")
    if open_loop and load.mode != "burst" and m.schedule_lag.p99 > LAG_P99_WARN_S:
        out.append(
            f"schedule lag p99 {m.schedule_lag.p99 * 1e3:.1f} ms > {LAG_P99_WARN_S * 1e3:.0f} ms: "
            "the client did not send on time (client saturated or in-flight cap reached)"
        )
    if (
        load.mode == "open"
        and m.offered_rps
        and m.achieved_rps
        and m.achieved_rps < 0.9 * m.offered_rps
    ):
        out.append(
            f"achieved send rate {m.achieved_rps:.2f} req/s is below the offered {m.offered_rps:.2f} req/s"
        )
    if m.n_failed:
        out.append(f"{m.n_failed} of {m.n_requests} requests failed: {m.errors}")
    if not m.any_streamed:
        out.append("streaming was off: TTFT equals E2E and TPOT/ICL are not measured")
    est = m.tokens.osl_sources.get("estimate", 0)
    if est:
        out.append(f"{est} requests had no usage: their output tokens are a client-side estimate")
    series = m.series.concurrency
    if open_loop and len(series) >= 6:
        third = len(series) // 3
        first = sum(series[:third]) / third
        last = sum(series[-2 * third : -third]) / third
        if first > 0 and last > 2 * first:
            out.append(
                "over-saturated: requests in flight kept growing during the run "
                f"({first:.1f} -> {last:.1f}); latencies grow with run length, not with load"
            )
    return tuple(out)
