"""The gateway's Prometheus metrics, in a registry owned by one app (no globals).

Request metrics are recorded by :class:`MetricsObserver`, a request observer (the request
path never touches a metric itself); endpoint metrics are read at scrape time from the
endpoint registry (normalized runtime stats), so they cost nothing per request.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from inferplane.observability.observer import (
    Attempt,
    Outcome,
    RequestRecord,
    failed_attempts_only,
    ignores,
)
from inferplane.observability.stats import EndpointStats

__all__ = ["EndpointSample", "GatewayMetrics", "MetricsObserver", "ModelMetrics", "RoutingSample"]

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
        self._models: dict[str, ModelMetrics] = {}
        self.live: set[RequestRecord] = set()
        """Requests started and not finished (``inferplane_requests_in_flight`` counts them at scrape)."""
        r.register(_RequestCollector(self._models, self.live))
        r.register(_StateCollector(endpoints, routing))

    def model(self, model: str) -> ModelMetrics:
        """The hot-path metrics of one model (created on first use)."""
        mm = self._models.get(model)
        if mm is None:
            mm = self._models[model] = ModelMetrics()
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
    prefix_index_blocks: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    """(deployment, endpoint) -> (blocks the prefix index remembers there, its bound)."""


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
        size = GaugeMetricFamily("inferplane_prefix_index_blocks",
                                 "Prompt blocks the prefix index remembers per endpoint (its memory).",
                                 labels=["deployment", "endpoint"])
        bound = GaugeMetricFamily("inferplane_prefix_index_capacity_blocks",
                                  "The prefix index's bound per endpoint (the runtime's KV capacity where known).",
                                  labels=["deployment", "endpoint"])
        for (dep, eid), (n, cap) in sorted(r.prefix_index_blocks.items()):
            size.add_metric([dep, eid], float(n))
            bound.add_metric([dep, eid], float(cap))
        yield size
        yield bound


class FastHistogram:
    """A histogram for the event-loop thread only; ``counts[i]`` holds values <= ``bounds[i]``
    (the last slot: above every bound), made cumulative at scrape time."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    @property
    def count(self) -> int:
        """Values observed (the counts added up: one addition fewer per observation)."""
        return sum(self.counts)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        out, acc = [], 0
        for bound, n in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            acc += n
            out.append((bound, float(acc)))
        return out


class ModelMetrics:
    """One model's request metrics, updated on the hot path without locks or label lookups.

    Everything here is touched only from the gateway's event loop (handlers and the
    /metrics handler run there), which is what makes the plain arithmetic safe.
    """

    __slots__ = ("completion_tokens", "e2e", "itl", "prompt_tokens", "requests", "ttft")

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        """Requests finished, by (route, status); plain numbers the observer adds to in place
        (a counter object's method call per request costs more than the addition)."""
        self.ttft = FastHistogram(_LATENCY_BUCKETS)
        self.itl = FastHistogram(_ITL_BUCKETS)
        self.e2e = FastHistogram(_LATENCY_BUCKETS)
        self.prompt_tokens = 0
        self.completion_tokens = 0


class _RequestCollector(Collector):
    """Renders every model's ModelMetrics in the Prometheus families clients expect."""

    def __init__(self, models: dict[str, ModelMetrics], live: set[RequestRecord]) -> None:
        self._models = models
        self._live = live

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        requests = CounterMetricFamily("inferplane_requests", "Requests answered, by model, API route and HTTP status.",
                                       labels=["model", "route", "status"])
        in_flight = GaugeMetricFamily("inferplane_requests_in_flight", "Requests being served now.", labels=["model"])
        hists = {
            "ttft": HistogramMetricFamily(
                "inferplane_time_to_first_token_seconds",
                "Time from request arrival to the first content chunk sent to the client (streams).",
                labels=["model"]),
            "itl": HistogramMetricFamily(
                "inferplane_inter_token_latency_seconds",
                "Gap between consecutive content chunks of a stream (llama.cpp and vLLM send one token per chunk).",
                labels=["model"]),
            "e2e": HistogramMetricFamily(
                "inferplane_e2e_request_latency_seconds", "Time from request arrival to the last byte sent.",
                labels=["model"]),
        }
        prompt = CounterMetricFamily("inferplane_prompt_tokens", "Prompt tokens, from the runtimes' usage reports.",
                                     labels=["model"])
        completion = CounterMetricFamily("inferplane_completion_tokens",
                                         "Completion tokens, from the runtimes' usage reports.", labels=["model"])
        live: dict[str, int] = {}
        for rec in list(self._live):
            if rec.model is not None:
                live[rec.model] = live.get(rec.model, 0) + 1
        for model, mm in sorted(self._models.items()):
            for (route, status), n in sorted(mm.requests.items()):
                requests.add_metric([model, route, str(status)], float(n))
            if not model:  # requests refused before a model was known: counted, nothing else
                continue
            in_flight.add_metric([model], float(live.get(model, 0)))
            for key, fam in hists.items():
                h: FastHistogram = getattr(mm, key)
                fam.add_metric([model], h.buckets(), h.sum)
            prompt.add_metric([model], float(mm.prompt_tokens))
            completion.add_metric([model], float(mm.completion_tokens))
        yield requests
        yield in_flight
        yield from hists.values()
        yield prompt
        yield completion


_NOT_UPSTREAM_ERRORS = frozenset({"ok", "stale_connection", "request_fault"})
"""Attempt outcomes that are no replica's failure (a stale pooled connection is resent at once)."""


class MetricsObserver:
    """The request metrics, kept as a request observer (see ``observability/observer.py``).

    ``inferplane_requests_total{model,route,status}`` counts every finished request, the
    gateway's own rejections included (``model=""`` when none was known: an unparsable body,
    an unknown model, a request refused before its body was read).
    """

    __slots__ = ("_m", "_models")

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._m = metrics
        self._models = metrics._models

    @ignores
    def started(self, rec: RequestRecord) -> None:
        """Nothing: the in-flight gauge counts ``GatewayMetrics.live``, which ``Observers`` keeps
        (built with ``live=metrics.live``)."""

    @failed_attempts_only
    def attempt(self, rec: RequestRecord, attempt: Attempt) -> None:
        kind = attempt.outcome
        model = rec.model or ""
        if kind == "stale_connection":
            self._m.retries.labels(model, kind).inc()
            return
        last = rec.notes.get("metrics")
        if last is None or last[0] <= attempt.t_start:
            rec.notes["metrics"] = (attempt.t_start, kind)
        if kind not in _NOT_UPSTREAM_ERRORS:
            self._m.upstream_errors.labels(model, attempt.endpoint_id, kind).inc()

    def first_token(self, rec: RequestRecord, t: float) -> None:
        model = rec.model or ""
        (self._models.get(model) or self._m.model(model)).ttft.observe(t - rec.t_start)

    def token_gap(self, rec: RequestRecord, gap_s: float) -> None:
        # per streamed chunk: the model's lookup and FastHistogram.observe inlined (two calls a chunk spared)
        model = rec.model or ""
        itl = (self._models.get(model) or self._m.model(model)).itl
        itl.counts[bisect_left(itl.bounds, gap_s)] += 1
        itl.sum += gap_s

    def finished(self, rec: RequestRecord, outcome: Outcome) -> None:
        model = rec.model or ""
        m = self._m
        mm = self._models.get(model) or m.model(model)  # m.model's lookup, without its call
        status = outcome.status
        key = (rec.route, status)
        done = mm.requests
        done[key] = done.get(key, 0) + 1
        if status == 200:
            e2e = mm.e2e  # FastHistogram.observe, inlined (a call per request spared)
            v = outcome.t_end - rec.t_start
            e2e.counts[bisect_left(e2e.bounds, v)] += 1
            e2e.sum += v
        usage = outcome.usage
        if usage is not None:
            if usage.prompt_tokens:
                mm.prompt_tokens += usage.prompt_tokens
            if usage.completion_tokens:
                mm.completion_tokens += usage.completion_tokens
        if outcome.retries and outcome.endpoint_id is not None:
            last = rec.notes.get("metrics")
            m.retries.labels(model, last[1] if last else "retry").inc()
        if status == 499:
            m.client_disconnects.labels(model).inc()
