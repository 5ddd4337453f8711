"""Reading a deployment's scaling signals from the gateway's own state (no I/O).

Gateway-side counts (in flight, held) are always there; runtime-side ones (running,
waiting, KV-cache usage) come from the health checker's last scrape and are None where
the runtime does not export them; TTFT p95 is taken from the gateway's TTFT histogram
over the last ``ttft_window_s``.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Protocol

from inferplane.autoscale.policy import Signals
from inferplane.routing.held import HeldQueue
from inferplane.routing.registry import EndpointRegistry, EndpointState

__all__ = ["SignalReader", "histogram_quantile"]


class _Histogram(Protocol):  # what the reader needs of observability.metrics.FastHistogram
    bounds: tuple[float, ...]
    counts: list[int]


def histogram_quantile(bounds: Sequence[float], counts: Sequence[int], q: float, *, min_count: int = 5) -> float | None:
    """The upper bound of the bucket holding quantile ``q`` of non-cumulative ``counts``
    (``counts[-1]``: above the last bound, reported as that bound); None below ``min_count``."""
    total = sum(counts)
    if total < min_count:
        return None
    acc, rank = 0, q * total
    for i, n in enumerate(counts):
        acc += n
        if acc >= rank:
            return float(bounds[min(i, len(bounds) - 1)])
    return float(bounds[-1])


class SignalReader:
    def __init__(self, registry: EndpointRegistry, held: HeldQueue | None,
                 ttft: Callable[[str], _Histogram | None] = lambda _name: None, *, ttft_window_s: float = 15.0) -> None:
        self.registry = registry
        self.held = held
        self._ttft = ttft
        self._window_s = ttft_window_s
        self._snapshots: dict[str, collections.deque[tuple[float, list[int]]]] = {}

    def read(self, deployment: str, now: float) -> Signals:
        ready = starting = in_flight = 0
        running: int | None = None
        waiting: int | None = None
        kv: float | None = None
        for e in self.registry.endpoints(deployment):
            in_flight += e.in_flight
            if e.state is EndpointState.DRAINING:
                continue
            if not e.ready:
                starting += e.managed
                continue
            ready += 1
            st = e.stats
            if st.running is not None:
                running = (running or 0) + int(st.running)
            if st.waiting is not None:
                waiting = (waiting or 0) + int(st.waiting)
            if st.kv_cache_usage is not None:
                kv = max(kv or 0.0, st.kv_cache_usage)
        held = self.held.depth(deployment) if self.held is not None else 0
        return Signals(now=now, ready=ready, starting=starting, in_flight=in_flight, held=held,
                       runtime_running=running, runtime_waiting=waiting, kv_cache_usage=kv,
                       ttft_p95_s=self._ttft_p95(deployment, now))

    def _ttft_p95(self, deployment: str, now: float) -> float | None:
        h = self._ttft(deployment)
        if h is None:
            return None
        snaps = self._snapshots.setdefault(deployment, collections.deque())
        snaps.append((now, list(h.counts)))
        while len(snaps) > 1 and snaps[1][0] <= now - self._window_s:
            snaps.popleft()
        base = snaps[0][1]
        delta = [a - b for a, b in zip(h.counts, base, strict=True)]
        return histogram_quantile(h.bounds, delta, 0.95)
