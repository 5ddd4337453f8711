"""The held-request queue per deployment, priority and tenant, read at scrape time (free per request)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

from inferplane.config.tenants import PRIORITIES
from inferplane.routing.held import HeldQueue

__all__ = ["QueueCollector", "priority_name"]

_NAMES = {v: k for k, v in PRIORITIES.items()}


def priority_name(rank: int) -> str:
    return _NAMES.get(rank, str(rank))


class QueueCollector(Collector):
    def __init__(self, held: HeldQueue) -> None:
        self._held = held

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | SummaryMetricFamily]:
        labels = ["deployment", "priority", "tenant"]
        depth = GaugeMetricFamily("inferplane_queue_depth", "Requests held in the gateway now (waiting for a "
                                  "replica to be ready or to have room).", labels=labels)
        oldest = GaugeMetricFamily("inferplane_queue_oldest_wait_seconds", "How long the longest-held request "
                                   "has waited so far.", labels=labels)
        held = self._held
        now = held.now()
        for dep in sorted(held.depths()):
            groups: dict[tuple[str, str], tuple[int, float]] = {}
            for t in held.held(dep):
                k = (priority_name(t.priority), t.tenant or "")
                n, since = groups.get(k, (0, t.held_since))
                groups[k] = (n + 1, min(since, t.held_since))
            for (prio, tenant), (n, since) in sorted(groups.items()):
                depth.add_metric([dep, prio, tenant], float(n))
                oldest.add_metric([dep, prio, tenant], now - since)
        yield depth
        yield oldest
        wait = SummaryMetricFamily("inferplane_queue_wait_seconds", "Time held requests waited before they got "
                                   "a replica.", labels=labels)
        timeouts = CounterMetricFamily("inferplane_queue_timeouts", "Held requests answered 503 because their "
                                       "wait ran out (queue_timeout_s).", labels=labels)
        for (dep, rank, who), st in sorted(held.waits.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "")):
            lv = [dep, priority_name(rank), who or ""]
            wait.add_metric(lv, count_value=st.served, sum_value=st.wait_s_sum)
            timeouts.add_metric(lv, float(st.timeouts))
        yield wait
        yield timeouts
