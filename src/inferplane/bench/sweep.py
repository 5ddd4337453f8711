"""Sweeps over load (concurrency ladder or rates) and the SLO search: decisions are pure.

- A sweep stops early when the server is saturated: TTFT p50 has more than doubled since
  the first step *and* mean concurrency rose by more than half since the previous step
  *while* throughput grew by less than 5%. Past that point latency only measures queueing.
- The SLO search finds the highest rate whose run meets every SLO: it doubles the rate
  until a run fails, then bisects between the last pass and the first failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from inferplane.bench.analysis import RunOutcome
from inferplane.bench.metrics import RunMetrics

__all__ = ["SearchResult", "parse_sweep", "saturation_reason", "slo_search"]


def parse_sweep(spec: str) -> tuple[str, tuple[float, ...]]:
    """``"concurrency=1,2,4"`` or ``"rate=0.5,1,2"`` -> (kind, values). Raises ``ValueError``."""
    kind, sep, values = spec.partition("=")
    kind = kind.strip().lower()
    if not sep or kind not in ("concurrency", "rate"):
        raise ValueError(f"bad --sweep {spec!r}: use concurrency=1,2,4,8 or rate=1,2,4")
    nums = tuple(float(v) for v in values.split(",") if v.strip())
    if not nums or any(v <= 0 for v in nums):
        raise ValueError("sweep values must be positive numbers")
    if kind == "concurrency" and any(v != int(v) for v in nums):
        raise ValueError("concurrency values must be integers")
    return kind, nums


def saturation_reason(first: RunMetrics, prev: RunMetrics, cur: RunMetrics) -> str | None:
    """Why the sweep should stop after ``cur`` (``None`` to continue)."""
    ttft_up = cur.ttft.p50 > 2 * first.ttft.p50
    conc_up = cur.concurrency_mean > 1.5 * prev.concurrency_mean
    flat = cur.request_throughput < 1.05 * prev.request_throughput
    if ttft_up and conc_up and flat:
        return (
            f"saturated: TTFT p50 {cur.ttft.p50 * 1e3:.0f} ms (> 2x first step) and concurrency "
            f"{prev.concurrency_mean:.1f} -> {cur.concurrency_mean:.1f} with throughput "
            f"{prev.request_throughput:.2f} -> {cur.request_throughput:.2f} req/s"
        )
    return None


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Runs in the order they were made and the highest passing rate (``None`` if none passed)."""

    runs: tuple[tuple[float, RunOutcome], ...]
    best_rate: float | None


def slo_search(
    run_at: Callable[[float], RunOutcome], *, start_rate: float, max_steps: int = 6
) -> SearchResult:
    """Highest rate meeting all SLOs within ``max_steps`` runs; a run passes when all ``slo_met``."""

    def passes(o: RunOutcome) -> bool:
        return o.metrics.n_failed == 0 and all(o.metrics.slo_met.values())

    runs: list[tuple[float, RunOutcome]] = []
    lo: float | None = None
    hi: float | None = None
    rate = start_rate
    for _ in range(max_steps):
        outcome = run_at(rate)
        runs.append((rate, outcome))
        if passes(outcome):
            lo = rate
            rate = rate * 2 if hi is None else (rate + hi) / 2
        else:
            hi = rate
            rate = rate / 2 if lo is None else (lo + rate) / 2
    return SearchResult(tuple(runs), lo)
