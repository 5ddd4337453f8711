"""Metric math on hand-made chunk timelines (times in ms for readability, converted to ns)."""

from __future__ import annotations

import math

import pytest

from inferplane.bench.client import StreamParser, make_record
from inferplane.bench.metrics import compute_run_metrics, request_metrics
from inferplane.bench.records import RequestRecord
from inferplane.bench.slo import parse_slos
from inferplane.bench.stats import percentile, summarize

MS = 1_000_000


def _chunk(
    content: str | None = None, *, role: str | None = None, reasoning: str | None = None
) -> dict[str, object]:
    delta: dict[str, object] = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    return {"choices": [{"index": 0, "delta": delta}]}


def _usage(completion: int, prompt: int = 7) -> dict[str, object]:
    return {"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}


def _parse(
    events: list[tuple[int, dict[str, object]]], *, send_ms: int = 0, close_ms: int | None = None
) -> RequestRecord:
    p = StreamParser()
    for t, obj in events:
        p.event(obj, t * MS, chat=True)
    close = (close_ms if close_ms is not None else events[-1][0]) * MS
    return make_record(p, "".join(p.text), t_sched=send_ms * MS, t_send=send_ms * MS, t_close=close)


def test_role_only_first_chunk_does_not_count_as_first_token() -> None:
    rec = _parse(
        [
            (50, _chunk("", role="assistant")),
            (200, _chunk("Hello")),
            (300, _chunk(" world")),
            (301, _usage(2)),
        ]
    )
    m = request_metrics(rec)
    assert rec.t_first_ns == 200 * MS
    assert m.ttft_s == pytest.approx(0.200)
    assert m.tpot_s == pytest.approx(0.100)  # (300 - 200) / (2 - 1)
    assert m.e2e_s == pytest.approx(0.301)
    assert rec.chunk_times_ns == (200 * MS, 300 * MS)  # usage-only chunk is not a content chunk


def test_multi_token_chunks_split_tpot_and_icl() -> None:
    # 3 chunks carrying 10 tokens: ICL is the chunk gap, TPOT spreads over tokens.
    events = [
        (100, _chunk("a b c d")),
        (200, _chunk("e f g")),
        (400, _chunk("h i j")),
        (400, _usage(10)),
    ]
    rec = _parse(events)
    m = request_metrics(rec)
    assert m.tpot_s == pytest.approx(0.300 / 9)
    assert m.icl_s == pytest.approx((0.100, 0.200))
    assert m.tokens_per_chunk == pytest.approx(10 / 3)
    assert m.ntpot_s == pytest.approx(0.400 / 10)


def test_reasoning_content_counts_for_ttft_but_not_first_output() -> None:
    events = [
        (10, _chunk(role="assistant")),
        (120, _chunk(reasoning="thinking")),
        (250, _chunk("answer")),
        (260, _usage(2)),
    ]
    rec = _parse(events)
    assert rec.t_first_ns == 120 * MS
    assert rec.t_first_output_ns == 250 * MS
    assert rec.reasoning_chunks == 1


def test_missing_usage_falls_back_to_marked_client_estimate_not_chunk_count() -> None:
    rec = _parse([(100, _chunk("one two three four")), (200, _chunk(" five six"))])
    assert rec.osl_source == "estimate"
    assert rec.osl == 6  # six words, two chunks: never the chunk count
    assert rec.isl_source == "estimate"


def test_usage_reported_is_used_and_estimate_kept() -> None:
    rec = _parse([(100, _chunk("one two")), (200, _usage(5, prompt=11))])
    assert (rec.osl, rec.osl_source, rec.osl_client) == (5, "usage", 2)
    assert (rec.isl, rec.isl_source) == (11, "usage")


def test_tool_calls_count_as_content() -> None:
    tool = {
        "choices": [
            {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "f"}}]}}
        ]
    }
    rec = _parse([(10, _chunk(role="assistant")), (90, tool), (95, _usage(3))])
    assert rec.t_first_ns == 90 * MS and rec.t_first_output_ns == 90 * MS


def test_tpot_undefined_for_single_token_and_non_streamed() -> None:
    one = _parse([(100, _chunk("x")), (101, _usage(1))])
    assert request_metrics(one).tpot_s is None
    p = StreamParser()
    p.event(
        {
            "choices": [{"message": {"role": "assistant", "content": "a b c"}}],
            "usage": {"completion_tokens": 3},
        },
        500 * MS,
        chat=True,
    )
    rec = make_record(p, "a b c", t_sched=0, t_send=0, t_close=500 * MS, stream=False)
    m = request_metrics(rec)
    assert m.ttft_s == m.e2e_s == pytest.approx(0.5)
    assert m.tpot_s is None and m.icl_s == ()


def _rec(
    i: int,
    send: int,
    first: int | None,
    last: int | None,
    close: int,
    osl: int | None = 4,
    ok: bool = True,
    sched: int | None = None,
) -> RequestRecord:
    chunks = (first * MS, last * MS) if first is not None and last is not None else ()
    return RequestRecord(
        index=i, ok=ok, stream=True, t_sched_ns=(sched if sched is not None else send) * MS, t_send_ns=send * MS,
        t_close_ns=close * MS, t_first_ns=first * MS if first is not None else None, t_last_ns=last * MS if last is not None else None,
        chunk_times_ns=chunks, osl=osl if ok else None, osl_source="usage" if ok else "none", isl=10 if ok else None,
        isl_source="usage" if ok else "none", error_class=None if ok else "http_500",
    )  # fmt: skip


def test_failed_requests_count_against_goodput_and_in_error_adjusted_view() -> None:
    recs = [
        _rec(0, 0, 100, 400, 400),
        _rec(1, 0, 150, 450, 450),
        _rec(2, 500, 900, 1900, 2000),  # TTFT 400 ms: misses a 300 ms SLO
        _rec(3, 1000, None, None, 1100, ok=False),
    ]
    m = compute_run_metrics(recs, parse_slos("ttft=300ms"))
    assert m.duration_s == pytest.approx(
        1.9
    )  # last t_last (1900; the failure closed at 1100) - first send
    assert m.n_failed == 1 and m.errors == {"http_500": 1}
    assert m.goodput_rps == pytest.approx(2 / m.duration_s)
    assert m.slo_attainment == pytest.approx(0.5)
    assert m.ttft.n == 3  # failures excluded from the plain view...
    assert m.ttft_error_adjusted.n == 4 and math.isinf(
        m.ttft_error_adjusted.max
    )  # ...but counted as +inf here
    assert math.isinf(m.ttft_error_adjusted.p99)
    assert m.slo_met == {"ttft_p99<=300ms": False}
    assert m.request_throughput == pytest.approx(3 / m.duration_s)
    assert m.output_throughput == pytest.approx(12 / m.duration_s)


def test_run_concurrency_duration_and_schedule_lag() -> None:
    recs = [_rec(0, 0, 100, 800, 900, sched=0), _rec(1, 500, 600, 1500, 2000, sched=400)]
    m = compute_run_metrics(recs)
    assert m.duration_s == pytest.approx(1.5)  # last t_last - first t_send
    assert m.concurrency_mean == pytest.approx((0.9 + 1.5) / 1.5)
    assert m.concurrency_peak == 2
    assert m.schedule_lag.max == pytest.approx(0.1)
    assert m.ttft_sched.max == pytest.approx(0.2)
    assert m.series.completed == (1, 1)  # 1-s buckets from the first send
    assert m.series.concurrency[0] == pytest.approx(0.9 + 0.5)


def test_percentiles_linear_interpolation() -> None:
    xs = [1.0, 2.0, 3.0, 4.0]
    assert percentile(xs, 50) == pytest.approx(2.5)
    assert percentile(xs, 90) == pytest.approx(3.7)
    assert percentile(xs, 99) == pytest.approx(3.97)
    assert percentile(xs, 0) == 1.0 and percentile(xs, 100) == 4.0
    assert percentile([5.0], 99) == 5.0
    assert math.isnan(percentile([], 50))
    assert percentile([1.0, math.inf], 50) == math.inf
    d = summarize([4.0, 1.0, 3.0, 2.0])
    assert (d.n, d.min, d.max, d.mean) == (4, 1.0, 4.0, 2.5)
    assert d.std == pytest.approx(1.2909944, rel=1e-6)  # sample std
    assert summarize([]).n == 0
    with pytest.raises(ValueError):
        percentile(xs, 101)
