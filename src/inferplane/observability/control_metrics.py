"""Control-plane metrics (replica counts, autoscaler decisions, held requests), read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from inferplane.placement.controller import ReplicaCounts

__all__ = ["ControlCollector"]


class ControlCollector(Collector):
    def __init__(self, counts: Callable[[], Mapping[str, ReplicaCounts]],
                 decisions: Callable[[], Mapping[tuple[str, str, str], int]],
                 held: Callable[[], Mapping[str, int]],
                 held_timeouts: Callable[[], Mapping[str, int]],
                 held_rejected: Callable[[], Mapping[str, int]] = dict) -> None:
        self._counts = counts
        self._decisions = decisions
        self._held = held
        self._held_timeouts = held_timeouts
        self._held_rejected = held_rejected

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        replicas = GaugeMetricFamily(
            "inferplane_deployment_replicas",
            "Replicas of a deployment by state: desired (the target), starting, ready, draining, "
            "external (endpoints inferplane does not launch).", labels=["deployment", "state"])
        for name, c in sorted(self._counts().items()):
            for state in ("desired", "starting", "ready", "draining", "external"):
                replicas.add_metric([name, state], float(getattr(c, state)))
        yield replicas
        decisions = CounterMetricFamily(
            "inferplane_autoscaler_decisions", "Autoscaler decisions that changed a deployment's desired count.",
            labels=["deployment", "direction", "reason"])
        for (name, direction, reason), n in sorted(self._decisions().items()):
            decisions.add_metric([name, direction, reason], float(n))
        yield decisions
        held = GaugeMetricFamily("inferplane_held_requests",
                                 "Requests waiting in the gateway for a replica of the deployment.",
                                 labels=["deployment"])
        for name, n in sorted(self._held().items()):
            held.add_metric([name], float(n))
        yield held
        timeouts = CounterMetricFamily("inferplane_held_request_timeouts",
                                       "Held requests answered 503 because no replica became ready in time.",
                                       labels=["deployment"])
        for name, n in sorted(self._held_timeouts().items()):
            timeouts.add_metric([name], float(n))
        yield timeouts
        rejected = CounterMetricFamily("inferplane_held_requests_rejected",
                                       "Requests answered 503 at once because the deployment's held-request "
                                       "queue was full (gateway.max_held_requests).", labels=["deployment"])
        for name, n in sorted(self._held_rejected().items()):
            rejected.add_metric([name], float(n))
        yield rejected
