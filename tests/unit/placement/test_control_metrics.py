"""Control-plane metrics render the names and labels the docs promise."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from inferplane.observability.control_metrics import ControlCollector
from inferplane.placement.controller import ReplicaCounts


def test_replica_counts_decisions_and_held_requests_are_exported() -> None:
    reg = CollectorRegistry()
    reg.register(ControlCollector(lambda: {"m": ReplicaCounts(desired=3, starting=1, ready=2, draining=1, external=0)},
                                  lambda: {("m", "down", "idle"): 2}, lambda: {"m": 4}, lambda: {"m": 1},
                                  lambda: {"m": 5}))
    lines = set(generate_latest(reg).decode().splitlines())
    assert {
        'inferplane_deployment_replicas{deployment="m",state="desired"} 3.0',
        'inferplane_deployment_replicas{deployment="m",state="ready"} 2.0',
        'inferplane_deployment_replicas{deployment="m",state="draining"} 1.0',
        'inferplane_autoscaler_decisions_total{deployment="m",direction="down",reason="idle"} 2.0',
        'inferplane_held_requests{deployment="m"} 4.0',
        'inferplane_held_request_timeouts_total{deployment="m"} 1.0',
        'inferplane_held_requests_rejected_total{deployment="m"} 5.0',
    } <= lines
