"""The gateway's Prometheus metrics, in a registry owned by one app (no globals).

Request metrics are recorded by the proxy; endpoint metrics are read at scrape time
from the endpoint registry (normalized runtime stats), so they cost nothing per request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from inferplane.observability.stats import EndpointStats

__all__ = ["EndpointSample", "GatewayMetrics", "ModelMetrics", "RoutingSample"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0,
                    1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
_ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1,
                0.15, 0.2, 0.3, 0.5, 1.0, 2.5)


class GatewayMetrics:
    """All metrics one gateway exports on ``/metrics``."""

    def __init__(self, endpoints: Callable[[], Iterable[EndpointSample]],
                 routing: Callable[[], RoutingSample] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "inferplane_requests", "Requests answered, by model, API route and HTTP status.",
            ["model", "route", "status"], registry=r,
        )
        self.in_flight = Gauge(
            "inferplane_requests_in_flight", "Requests being served now.", ["model"], registry=r
        )
        self.ttft = Histogram(
            "inferplane_time_to_first_token_seconds",
            "Time from request arrival to the first content chunk sent to the client (streams).",
            ["model"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.itl = Histogram(
            "inferplane_inter_token_latency_seconds",
            "Gap between consecutive content chunks of a stream (llama.cpp and vLLM send one token per chunk).",
            ["model"], buckets=_ITL_BUCKETS, registry=r,
        )
        self.e2e = Histogram(
            "inferplane_e2e_request_latency_seconds", "Time from request arrival to the last byte sent.",
            ["model"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.prompt_tokens = Counter(
            "inferplane_prompt_tokens", "Prompt tokens, from the runtimes' usage reports.", ["model"], registry=r
        )
        self.completion_tokens = Counter(
            "inferplane_completion_tokens", "Completion tokens, from the runtimes' usage reports.",
            ["model"], registry=r,
        )
        self.upstream_errors = Counter(
            "inferplane_upstream_errors",
            "Failed attempts to reach a replica, by kind (connect, timeout, disconnect, status_5xx, stream_broken).",
            ["model", "endpoint", "kind"], registry=r,
        )
        self.retries = Counter(
            "inferplane_retries", "Requests re-sent to another replica (or a fresh connection) before the first byte.",
            ["model", "reason"], registry=r,
        )
        self.client_disconnects = Counter(
            "inferplane_client_disconnects", "Requests whose client went away before the end; the upstream was cancelled.",
            ["model"], registry=r,
        )
        r.register(_StateCollector(endpoints, routing))
        self._models: dict[str, ModelMetrics] = {}

    def model(self, model: str) -> ModelMetrics:
        """The per-model children, resolved once (``labels()`` costs a lock and a dict walk)."""
        mm = self._models.get(model)
        if mm is None:
            mm = self._models[model] = ModelMetrics(self, model)
        return mm

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(frozen=True, slots=True)
class EndpointSample:
    """One endpoint's state at scrape time; None values are not exported."""

    deployment: str
    endpoint: str
    runtime: str
    ready: bool
    in_flight: int
    breaker_state: int
    stats: EndpointStats


@dataclass(frozen=True, slots=True)
class RoutingSample:
    """Routing counters at scrape time."""

    decisions: dict[tuple[str, str], int]
    """(deployment, policy) -> decisions."""
    prefix_predicted_blocks: dict[str, int]
    prefix_observed_blocks: dict[str, int]


class _StateCollector(Collector):
    """Per-endpoint and routing state, read from providers at scrape time (free per request)."""

    def __init__(self, endpoints: Callable[[], Iterable[EndpointSample]],
                 routing: Callable[[], RoutingSample] | None) -> None:
        self._endpoints = endpoints
        self._routing = routing

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        labels = ["deployment", "endpoint", "runtime"]
        g = {
            "ready": GaugeMetricFamily("inferplane_endpoint_ready", "1 if the endpoint takes traffic.", labels=labels),
            "in_flight": GaugeMetricFamily(
                "inferplane_endpoint_in_flight", "Requests the gateway has in flight there.", labels=labels
            ),
            "breaker": GaugeMetricFamily(
                "inferplane_endpoint_breaker_state", "Circuit breaker: 0 closed, 1 open, 2 half-open.", labels=labels
            ),
            "running": GaugeMetricFamily(
                "inferplane_endpoint_running", "Requests running in the runtime (scraped).", labels=labels
            ),
            "waiting": GaugeMetricFamily(
                "inferplane_endpoint_waiting", "Requests queued in the runtime (scraped).", labels=labels
            ),
            "kv_cache_usage": GaugeMetricFamily(
                "inferplane_endpoint_kv_cache_usage_ratio", "KV-cache usage 0..1 (scraped).", labels=labels
            ),
            "prefix_cache_hits": GaugeMetricFamily(
                "inferplane_endpoint_prefix_cache_hits", "Prefix-cache hits (scraped counter; tokens).", labels=labels
            ),
            "prefix_cache_queries": GaugeMetricFamily(
                "inferplane_endpoint_prefix_cache_queries", "Prefix-cache lookups (scraped counter; tokens).",
                labels=labels,
            ),
            "prompt_tokens": GaugeMetricFamily(
                "inferplane_endpoint_prompt_tokens", "Prompt tokens processed (scraped counter).", labels=labels
            ),
            "generation_tokens": GaugeMetricFamily(
                "inferplane_endpoint_generation_tokens", "Tokens generated (scraped counter).", labels=labels
            ),
        }
        for e in self._endpoints():
            lv = [e.deployment, e.endpoint, e.runtime]
            g["ready"].add_metric(lv, 1.0 if e.ready else 0.0)
            g["in_flight"].add_metric(lv, float(e.in_flight))
            g["breaker"].add_metric(lv, float(e.breaker_state))
            for key in ("running", "waiting", "kv_cache_usage", "prefix_cache_hits", "prefix_cache_queries",
                        "prompt_tokens", "generation_tokens"):
                value = getattr(e.stats, key)
                if value is not None:
                    g[key].add_metric(lv, float(value))
        yield from g.values()
        if self._routing is None:
            return
        r = self._routing()
        dec = CounterMetricFamily("inferplane_routing_decisions", "Routing decisions by deployment and policy "
                                  "('only': one candidate left; 'tier': one candidate in the chosen tier).",
                                  labels=["deployment", "policy"])
        for (dep, pol), n in sorted(r.decisions.items()):
            dec.add_metric([dep, pol], float(n))
        yield dec
        pred = CounterMetricFamily("inferplane_prefix_predicted_cached_blocks",
                                   "Prompt blocks the prefix policy predicted cached on its choice.",
                                   labels=["deployment"])
        obs = CounterMetricFamily("inferplane_prefix_observed_cached_blocks",
                                  "Prompt blocks the runtime reported cached (usage cached_tokens), same requests.",
                                  labels=["deployment"])
        for dep, n in sorted(r.prefix_predicted_blocks.items()):
            pred.add_metric([dep], float(n))
        for dep, n in sorted(r.prefix_observed_blocks.items()):
            obs.add_metric([dep], float(n))
        yield pred
        yield obs


class ModelMetrics:
    """Label-resolved metrics of one model, for the hot path."""

    __slots__ = ("_metrics", "_model", "_requests", "completion_tokens", "e2e", "in_flight", "itl",
                 "prompt_tokens", "ttft")

    def __init__(self, metrics: GatewayMetrics, model: str) -> None:
        self._metrics = metrics
        self._model = model
        self._requests: dict[tuple[str, int], Counter] = {}
        self.ttft = metrics.ttft.labels(model)
        self.itl = metrics.itl.labels(model)
        self.e2e = metrics.e2e.labels(model)
        self.prompt_tokens = metrics.prompt_tokens.labels(model)
        self.completion_tokens = metrics.completion_tokens.labels(model)
        self.in_flight = metrics.in_flight.labels(model)

    def request_done(self, route: str, status: int) -> None:
        c = self._requests.get((route, status))
        if c is None:
            c = self._requests[(route, status)] = self._metrics.requests.labels(self._model, route, str(status))
        c.inc()
