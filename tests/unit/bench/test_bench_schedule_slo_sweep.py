"""Arrival schedules, SLO parsing, sweep stop rule and SLO search."""

from __future__ import annotations

import itertools
import statistics

import pytest

from inferplane.bench.analysis import RunOutcome, analyze
from inferplane.bench.records import RequestRecord
from inferplane.bench.runner import LoadConfig, LoadResult
from inferplane.bench.schedule import arrival_offsets, parse_stages, stage_offsets
from inferplane.bench.slo import SloTarget, parse_duration_s, parse_slos
from inferplane.bench.sweep import parse_sweep, saturation_reason, slo_search


def _gaps(xs: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(xs)]


def test_poisson_constant_gamma_rates_and_burstiness() -> None:
    pois = arrival_offsets(4000, 10.0, "poisson", seed=1)
    assert pois[0] == 0.0 and pois == sorted(pois)
    assert statistics.mean(_gaps(pois)) == pytest.approx(0.1, rel=0.08)
    assert _gaps(arrival_offsets(5, 4.0, "constant")) == pytest.approx([0.25] * 4)
    bursty = _gaps(arrival_offsets(4000, 10.0, "gamma", burstiness=0.25, seed=1))
    smooth = _gaps(arrival_offsets(4000, 10.0, "gamma", burstiness=4.0, seed=1))
    assert statistics.mean(bursty) == pytest.approx(0.1, rel=0.15)
    cv = lambda g: statistics.stdev(g) / statistics.mean(g)  # noqa: E731
    assert cv(bursty) > 1.5 > 1.0 > 0.7 > cv(smooth)
    assert arrival_offsets(3, 1.0, "burst") == [0.0, 0.0, 0.0]
    assert arrival_offsets(50, 5.0, seed=7) == arrival_offsets(50, 5.0, seed=7)


def test_stages_ramp() -> None:
    offs = stage_offsets([(10.0, 10.0), (40.0, 10.0)], "constant")
    first = [o for o in offs if o < 10]
    second = [o for o in offs if o >= 10]
    assert len(first) == pytest.approx(100, abs=1) and len(second) == pytest.approx(400, abs=1)
    assert parse_stages("1:10, 4:5") == [(1.0, 10.0), (4.0, 5.0)]
    with pytest.raises(ValueError):
        parse_stages("4")


def test_parse_slos() -> None:
    assert parse_slos("ttft_p99=200ms,tpot=0.05s,e2e_p90=3000") == (
        SloTarget("ttft", 0.2, 99.0), SloTarget("tpot", 0.05, 99.0), SloTarget("e2e", 3.0, 90.0),
    )  # fmt: skip
    assert parse_duration_s("300us") == pytest.approx(3e-4)
    for bad in ("latency=1s", "ttft", "ttft=fast"):
        with pytest.raises(ValueError):
            parse_slos(bad)


def test_parse_sweep() -> None:
    assert parse_sweep("concurrency=1,2,4") == ("concurrency", (1.0, 2.0, 4.0))
    assert parse_sweep("rate=0.5,1") == ("rate", (0.5, 1.0))
    for bad in ("qps=1", "concurrency=1.5", "rate=-1", "rate="):
        with pytest.raises(ValueError):
            parse_sweep(bad)


def _outcome(ttft_ms: float, conc: float, rps: float, n: int = 20) -> RunOutcome:
    # n requests over ~n/rps seconds, each in flight conc/rps seconds.
    recs = []
    e2e = conc / rps
    for i in range(n):
        send = int(i / rps * 1e9)
        first = send + int(ttft_ms * 1e6)
        close = send + int(e2e * 1e9)
        recs.append(
            RequestRecord(
                i,
                True,
                True,
                send,
                send,
                close,
                first,
                first,
                close,
                (first, close),
                4,
                "usage",
                isl=5,
            )
        )
    return analyze(
        "x",
        LoadConfig(rate=rps),
        LoadResult(tuple(recs), (10.0,), 1.0),
        parse_slos("ttft_p99=100ms"),
    )


def test_saturation_rule() -> None:
    a, b = _outcome(50, 2, 10), _outcome(60, 4, 19)
    c = _outcome(400, 9, 19.5)
    assert saturation_reason(a.metrics, a.metrics, b.metrics) is None
    reason = saturation_reason(a.metrics, b.metrics, c.metrics)
    assert reason is not None and "saturated" in reason


def test_slo_search_doubles_then_bisects() -> None:
    # Passes below 5 req/s.
    seen: list[float] = []

    def run_at(rate: float) -> RunOutcome:
        seen.append(rate)
        return _outcome(50 if rate < 5 else 500, 1, rate)

    res = slo_search(run_at, start_rate=1.0, max_steps=6)
    assert seen[:4] == [1.0, 2.0, 4.0, 8.0]
    assert seen[4] == 6.0 and seen[5] == 5.0
    assert res.best_rate == 4.0


def test_warnings_for_saturated_client_and_failures() -> None:
    out = _outcome(50, 1, 10)
    assert out.warnings == ()
    hot = analyze("x", LoadConfig(rate=10), LoadResult(out.records, (97.0,), 1.0))
    assert any("client saturated" in w for w in hot.warnings)
