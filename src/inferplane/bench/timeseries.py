"""One-second time series, peak concurrency and the steady-state window of a run.

Output tokens are attributed to time by spreading each request's OSL evenly over its
content chunks (a non-streamed response puts all of them at ``t_close``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from inferplane.bench.records import RequestRecord

__all__ = ["SteadyWindow", "TimeSeries", "build_series", "peak_concurrency", "steady_window"]

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class TimeSeries:
    """Per-second buckets from the first send: bucket ``i`` covers ``[i, i+1)`` seconds."""

    output_tokens: tuple[float, ...]
    """Output tokens that arrived in each second (= output tok/s)."""
    completed: tuple[int, ...]
    """Successful responses completed in each second."""
    concurrency: tuple[float, ...]
    """Mean number of requests in flight during each second."""


@dataclass(frozen=True, slots=True)
class SteadyWindow:
    """Throughput between the first completion and the last send (ramp-up and drain excluded)."""

    start_s: float
    end_s: float
    request_throughput: float
    output_throughput: float


MIN_TAIL_S = 0.5
"""A last partial second shorter than this is folded into the one before it."""


def _token_events(rec: RequestRecord) -> list[tuple[int, float]]:
    osl = rec.osl or 0
    if not rec.ok or osl <= 0:
        return []
    times = rec.chunk_times_ns or (rec.t_close_ns,)
    per = osl / len(times)
    return [(t, per) for t in times]


def build_series(records: Sequence[RequestRecord]) -> TimeSeries:
    """Bucket a run's output tokens, completions and in-flight time into seconds."""
    if not records:
        return TimeSeries((), (), ())
    t0 = min(r.t_send_ns for r in records)
    t_end = max(max(r.t_close_ns for r in records), t0 + 1)
    n = math.ceil((t_end - t0) / NS)
    tokens = [0.0] * n
    done = [0] * n
    busy = [0.0] * n
    for rec in records:
        for t, k in _token_events(rec):
            tokens[min((t - t0) // NS, n - 1)] += k
        if rec.ok:
            done[min((rec.t_close_ns - t0) // NS, n - 1)] += 1
        a, b = rec.t_send_ns - t0, rec.t_close_ns - t0
        for i in range(a // NS, min(b // NS, n - 1) + 1):
            lo, hi = max(a, i * NS), min(b, (i + 1) * NS)
            if hi > lo:
                busy[i] += (hi - lo) / NS
    # The last bucket may be partial: a rate over it needs its length. A sliver (the last
    # request ending a few ms into a new second) would turn its tokens into a huge "rate":
    # fold such a sliver into the previous second instead.
    tail = (t_end - t0) / NS - (n - 1)
    if 0 < tail < MIN_TAIL_S and n > 1:
        last_tokens, last_busy, last_done = tokens.pop(), busy.pop(), done.pop()
        tokens[-1] = (tokens[-1] + last_tokens) / (1 + tail)
        busy[-1] = (busy[-1] + last_busy) / (1 + tail)
        done[-1] += last_done
    elif 0 < tail < 1:
        tokens[-1] /= tail
        busy[-1] /= tail
    return TimeSeries(tuple(tokens), tuple(done), tuple(busy))


def peak_concurrency(records: Sequence[RequestRecord]) -> int:
    """Most requests in flight at one instant (a close at t frees its slot before a send at t)."""
    events = sorted([(r.t_send_ns, 1) for r in records] + [(r.t_close_ns, -1) for r in records])
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    return peak


def steady_window(
    records: Sequence[RequestRecord], min_window_s: float = 1.0
) -> SteadyWindow | None:
    """Throughput from the first completion to the last send; ``None`` if shorter than ``min_window_s``."""
    if not records:
        return None
    t0 = min(r.t_send_ns for r in records)
    start = min(r.t_close_ns for r in records)
    end = max(r.t_send_ns for r in records)
    span = (end - start) / NS
    if span < min_window_s:
        return None
    done = sum(1 for r in records if r.ok and start <= r.t_close_ns < end)
    tokens = sum(k for r in records for t, k in _token_events(r) if start <= t < end)
    return SteadyWindow((start - t0) / NS, (end - t0) / NS, done / span, tokens / span)
