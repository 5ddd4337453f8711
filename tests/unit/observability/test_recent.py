"""The dashboard's rolling windows, driven by explicit times."""

from __future__ import annotations

import pytest

from inferplane.observability.observer import Outcome, RequestRecord, Usage
from inferplane.observability.recent import (
    NO_DEPLOYMENT,
    OTHER_DEPLOYMENTS,
    RecentRequests,
    weighted_percentile,
)
from inferplane.protocol.routes import Route, SurfaceName


def _finish(rr: RecentRequests, model: str | None, t_start: float, *, e2e: float = 1.0, ttft: float | None = 0.1,
            status: int = 200, stream: bool = True, completion_tokens: int | None = 11,
            prompt_tokens: int = 5) -> None:
    rec = RequestRecord("r", SurfaceName.OPENAI, Route.CHAT, t_start, 0.0, "/v1/chat/completions",
                        model=model, stream=stream)
    usage = None if completion_tokens is None else Usage(prompt_tokens, completion_tokens)
    rr.started(rec)
    rr.finished(rec, Outcome(status, t_start + e2e, usage=usage if status < 400 else None,
                             ttft_s=ttft if status < 400 else None))


def test_requests_land_in_their_bucket_and_empty_buckets_are_zero() -> None:
    rr = RecentRequests(window_s=60, bucket_s=10, summary_s=60)
    _finish(rr, "a", 100.0, e2e=1.0)   # ends at 101 -> bucket [100, 110)
    _finish(rr, "a", 104.0, e2e=1.0)   # 105 -> same bucket
    _finish(rr, "a", 129.0, e2e=1.0)   # 130 -> bucket [130, 140)
    series = rr.snapshot(now=135.0)["a"]["series"]
    assert len(series) == 6  # 60 s / 10 s, oldest first
    assert [p["requests"] for p in series] == [0, 0, 2, 0, 0, 1]  # buckets from 80 s to 130 s
    assert [p["ago_s"] for p in series] == [55.0, 45.0, 35.0, 25.0, 15.0, 5.0]
    assert series[2]["rps"] == pytest.approx(0.2)      # 2 requests in a closed 10 s bucket
    assert series[-1]["rps"] == pytest.approx(1 / 5)   # the current bucket has run 5 s so far
    assert series[4]["ttft_p50_s"] is None


def test_old_buckets_leave_the_window() -> None:
    rr = RecentRequests(window_s=30, bucket_s=10)
    _finish(rr, "a", 0.0, e2e=1.0)
    assert rr.snapshot(now=5.0)["a"]["summary"]["requests"] == 1
    later = rr.snapshot(now=45.0)["a"]
    assert sum(p["requests"] for p in later["series"]) == 0
    assert later["summary"]["requests"] == 0
    assert rr.requests_total == 1  # the lifetime count does not roll


def test_memory_is_bounded_by_the_window_and_the_bins() -> None:
    rr = RecentRequests(window_s=50, bucket_s=5)
    for i in range(5000):
        # 500 s of traffic, 10 requests/s, TTFT spread over 1 ms .. 10 s
        _finish(rr, "a", i * 0.1, e2e=20.0, ttft=10 ** (-3 + 4 * ((i * 7919) % 1000) / 1000))
    ring = rr._rings["a"]
    assert len(ring) <= 10
    # 1 ms .. 10 s in 4 % bins is ~235 bins; 50 values per bucket occupy at most 50
    assert all(len(b.ttft.counts) <= 50 and len(b.e2e.counts) == 1 for b in ring)
    assert ring[-2].requests == 50 and ring[-2].ttft.n == 50  # every request is counted


def test_summary_percentiles_and_itl() -> None:
    rr = RecentRequests(window_s=120, bucket_s=10, summary_s=60)
    for i in range(100):
        # TTFT 0.01 .. 1.00 s; 11 completion tokens over e2e 2 s -> ITL (2 - ttft) / 10
        _finish(rr, "a", 100.0 + i * 0.5, e2e=2.0, ttft=(i + 1) / 100)
    s = rr.snapshot(now=155.0)["a"]["summary"]
    assert s["requests"] == 100 and s["ok"] == 100
    assert s["ttft_p50_s"] == pytest.approx(0.50, rel=0.02)  # within 2 %: the bins are 4 % wide
    assert s["ttft_p90_s"] == pytest.approx(0.90, rel=0.02)
    assert s["ttft_p99_s"] == pytest.approx(0.99, rel=0.02)
    assert s["itl_p50_s"] == pytest.approx((2.0 - 0.51) / 10, rel=0.02)  # ITL falls as TTFT grows
    assert s["e2e_p50_s"] == pytest.approx(2.0, rel=0.02)
    assert s["completion_tokens"] == 1100 and s["prompt_tokens"] == 500


def test_errors_are_counted_but_not_timed() -> None:
    rr = RecentRequests(window_s=60, bucket_s=10)
    _finish(rr, "a", 10.0, e2e=0.2, ttft=0.1)
    _finish(rr, "a", 10.0, e2e=0.001, status=429)
    _finish(rr, "a", 10.0, e2e=0.001, status=404)
    _finish(rr, "a", 10.0, e2e=30.0, status=504)
    s = rr.snapshot(now=15.0)["a"]["summary"]
    assert (s["requests"], s["ok"], s["client_errors"], s["server_errors"]) == (4, 1, 2, 1)
    assert s["statuses"] == {"200": 1, "404": 1, "429": 1, "504": 1}
    assert s["e2e_p99_s"] == pytest.approx(0.2, rel=0.02)  # the 30 s timeout is not a latency sample
    assert s["ttft_p50_s"] == pytest.approx(0.1, rel=0.02)


def test_itl_needs_a_stream_and_two_tokens() -> None:
    rr = RecentRequests(window_s=60, bucket_s=10)
    _finish(rr, "a", 0.0, stream=False)
    _finish(rr, "a", 0.0, completion_tokens=1)
    _finish(rr, "a", 0.0, completion_tokens=None)
    s = rr.snapshot(now=5.0)["a"]["summary"]
    assert s["requests"] == 3 and s["itl_p50_s"] is None and s["ttft_p50_s"] == pytest.approx(0.1, rel=0.02)


def test_requests_without_a_deployment_and_too_many_deployments() -> None:
    rr = RecentRequests(window_s=60, bucket_s=10, max_deployments=2)
    _finish(rr, None, 0.0, status=400)
    _finish(rr, "a", 0.0)
    _finish(rr, "b", 0.0)
    _finish(rr, "c", 0.0)
    snap = rr.snapshot(now=5.0)
    assert set(snap) == {NO_DEPLOYMENT, "a", OTHER_DEPLOYMENTS}
    assert snap[OTHER_DEPLOYMENTS]["summary"]["requests"] == 2


def test_a_late_event_counts_in_the_newest_bucket() -> None:
    rr = RecentRequests(window_s=60, bucket_s=10)
    _finish(rr, "a", 30.0, e2e=1.0)
    _finish(rr, "a", 5.0, e2e=1.0)  # ends before the newest bucket started
    series = rr.snapshot(now=35.0)["a"]["series"]
    assert series[-1]["requests"] == 2


def test_closed_bucket_percentiles_follow_new_requests() -> None:
    rr = RecentRequests(window_s=60, bucket_s=10)
    _finish(rr, "a", 30.0, e2e=1.0, ttft=0.1)
    assert rr.snapshot(now=35.0)["a"]["series"][-1]["ttft_p50_s"] == pytest.approx(0.1, rel=0.02)
    assert rr.snapshot(now=45.0)["a"]["summary"]["ttft_p50_s"] == pytest.approx(0.1, rel=0.02)  # now closed
    _finish(rr, "a", 31.0, e2e=1.0, ttft=0.3)
    _finish(rr, "a", 31.0, e2e=1.0, ttft=0.3)
    later = rr.snapshot(now=45.0)["a"]
    assert later["series"][-2]["ttft_p50_s"] == pytest.approx(0.3, rel=0.02)
    assert later["summary"]["ttft_p50_s"] == pytest.approx(0.3, rel=0.02)


def test_weighted_percentile() -> None:
    assert weighted_percentile([], 0.5) is None
    assert weighted_percentile([(1.0, 1.0), (2.0, 1.0), (3.0, 1.0), (4.0, 1.0)], 0.5) == 2.0
    # 3.0 stands for 10 values: it dominates the median
    assert weighted_percentile([(1.0, 1.0), (2.0, 1.0), (3.0, 10.0)], 0.5) == 3.0
    assert weighted_percentile([(5.0, 1.0)], 0.99) == 5.0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="bucket_s"):
        RecentRequests(window_s=5, bucket_s=10)


def test_latencies_outside_the_bins_range_are_clamped_not_lost() -> None:
    rr = RecentRequests(window_s=60, bucket_s=10)
    _finish(rr, "a", 0.0, e2e=1.0, ttft=0.0)       # below 1 us
    _finish(rr, "a", 0.0, e2e=1.0, ttft=1e7)       # beyond 1e5 s
    s = rr.snapshot(now=5.0)["a"]["summary"]
    assert s["ttft_p50_s"] == pytest.approx(1e-6, rel=0.05)
    assert 9e4 < s["ttft_p99_s"] < 1.1e5
