"""Shared builders for bench unit tests."""

from __future__ import annotations

import pytest

from inferplane.bench.analysis import analyze
from inferplane.bench.provenance import ClientHost, TargetInfo
from inferplane.bench.records import RequestRecord
from inferplane.bench.report import BenchReport, Provenance, SweepInfo
from inferplane.bench.runner import LoadConfig, LoadResult
from inferplane.bench.slo import parse_slos


def synthetic_records(
    n: int, ttft_ms: float, step_ms: float, spacing_ms: float, fail_every: int = 0
) -> tuple[RequestRecord, ...]:
    """``n`` streamed requests of 8 one-token chunks each."""
    out = []
    for i in range(n):
        send = int(i * spacing_ms * 1e6)
        if fail_every and i % fail_every == fail_every - 1:
            out.append(
                RequestRecord(
                    i,
                    False,
                    True,
                    send,
                    send,
                    send + 5_000_000,
                    error_class="http_500",
                    error_message="boom",
                )
            )
            continue
        chunks = tuple(send + int((ttft_ms + k * step_ms) * 1e6) for k in range(8))
        out.append(
            RequestRecord(
                i,
                True,
                True,
                send,
                send,
                chunks[-1] + 1000,
                chunks[0],
                chunks[0],
                chunks[-1],
                chunks,
                8,
                "usage",
                8,
                20,
                "usage",
            )
        )
    return tuple(out)


@pytest.fixture
def sample_report() -> BenchReport:
    """A three-step rate sweep with one failure, as a finished report."""
    slos = parse_slos("ttft_p99=300ms")
    runs = tuple(
        analyze(
            f"rate={r}",
            LoadConfig(rate=r),
            LoadResult(synthetic_records(30, ttft, 20, 1000 / r, fail_every=15), (30.0,), 3.0),
            slos,
        )
        for r, ttft in ((2, 100.0), (4, 150.0), (8, 400.0))
    )
    host = ClientHost("h", "linux", "3.11", 2, "cpu", "source", "2025-01-01T00:00:00Z")
    prov = Provenance(
        TargetInfo("http://127.0.0.1:1", ("m",)),
        host,
        "m",
        "chat",
        True,
        "synthetic",
        {"input_len": 10},
        None,
        0,
        ("ttft_p99<=300ms",),
    )
    return BenchReport(prov, runs, SweepInfo("rate", (2, 4, 8), None, 4.0))
