"""Discrete-event simulation of N replicas behind one routing policy.

Each replica has ``slots`` concurrent sequences, a FIFO queue, and an LRU prefix cache of
``cache_blocks`` blocks (the simulated runtime's real cache, independent of the policy's
estimate). A request's service time is ``prefill_s_per_token * uncached_tokens +
decode_s_per_token * output_tokens``; TTFT = queueing + prefill.

Routing is the gateway's own: an ``EndpointRegistry`` with one endpoint per replica and a
``Router`` over it, called exactly as the proxy calls them (``RouteInfo`` from the prompt's
bytes, ``pick``, ``acquire``, ``succeeded``, ``observed`` with the cached tokens the
simulated runtime reports, ``release``). The CPU time those calls take is measured: the
router's real cost per decision at that fleet size.

With ``gateways > 1`` each request goes to one of G independent gateways (a registry and a
router each, sharing nothing, as ``serve --workers`` processes or several ``serve``
instances do), picked at random per request (what SO_REUSEPORT or a load balancer does).
Each gateway knows its own in-flight counts; the replicas' running/waiting counts reach all
of them every ``scrape_s`` seconds, as the gateways' metrics scrapes do.
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Protocol

from sim_workloads import SimRequest

from inferplane.config.models import parse_config
from inferplane.routing.registry import Endpoint, EndpointRegistry

try:
    from inferplane.observability.stats import EndpointStats
except ImportError:  # an earlier tree
    from inferplane.runtimes.base import EndpointStats
from inferplane.routing.router import Choice, RouteInfo, Router
from inferplane.runtimes.base import OPENAI_DIALECT

__all__ = ["RunStats", "SimParams", "simulate"]


class Source(Protocol):
    def next(self, now_s: float) -> SimRequest: ...

    def finished(self, request: SimRequest, now_s: float) -> None: ...


@dataclass(frozen=True, slots=True)
class SimParams:
    """Cost model and cluster shape."""

    slots: int = 8
    cache_blocks: int = 512
    block_chars: int = 256
    chars_per_token: float = 4.0
    prefill_s_per_token: float = 0.0004
    decode_s_per_token: float = 0.02
    warmup_fraction: float = 0.1
    """Leading share of requests left out of the statistics (cold caches)."""
    feedback: bool = True
    """Report observed cached blocks back to policies that take it (``observe_cached``)."""
    gateways: int = 1
    """Independent gateways in front of the same replicas (see the module docstring)."""
    scrape_s: float = 1.0
    """How often every gateway learns the replicas' running/waiting counts (gateways > 1), s."""


@dataclass(slots=True)
class _Job:
    request: SimRequest
    info: RouteInfo
    choice: Choice
    release: object
    arrival_s: float
    replica: int
    counted: bool
    cached_blocks: int = 0
    router: Router | None = None
    """The gateway that routed it (it hears the runtime's cached-token report)."""


@dataclass(slots=True)
class _Replica:
    endpoint_id: str
    running: int = 0
    queue: deque[_Job] = field(default_factory=deque)
    cache: OrderedDict[int, None] = field(default_factory=OrderedDict)
    served: int = 0


@dataclass(frozen=True, slots=True)
class RunStats:
    """What one simulated run measured (after warm-up)."""

    requests: int
    hit_rate: float
    """Prompt tokens served from cache / all prompt tokens."""
    predicted_hit_rate: float | None
    """What the policy predicted (prefix policy only)."""
    ttft_p50_s: float
    ttft_p99_s: float
    max_over_mean: float
    """Requests on the busiest replica / mean requests per replica."""
    cv: float
    """Coefficient of variation of requests per replica."""
    decision_us: float = math.nan
    """Router CPU per request (RouteInfo, pick, acquire/release, feedback), microseconds."""
    throughput_rps: float = math.nan
    """Requests completed per simulated second, over the measured window."""
    inflight_max_over_mean: float = math.nan
    """Load imbalance: the busiest replica's time-averaged in-flight count (running + queued)
    over the mean replica's, over the measured window."""


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    k = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[k]


def _cache_lookup_and_fill(replica: _Replica, hashes: tuple[int, ...], limit: int) -> int:
    cache = replica.cache
    hit = 0
    for h in hashes:
        if h not in cache:
            break
        hit += 1
    for h in reversed(hashes):  # tails are evicted before shared heads
        cache[h] = None
        cache.move_to_end(h)
    while len(cache) > limit:
        cache.popitem(last=False)
    return hit


try:
    from inferplane.routing.prefix import prompt_view  # noqa: F401  (routing reads the bytes)

    def _route_info(model: str, request: SimRequest) -> RouteInfo:
        return RouteInfo(model, request.session_key, request.prompt)
except ImportError:  # an earlier tree (--compare-src): its RouteInfo takes the prompt as text

    def _route_info(model: str, request: SimRequest) -> RouteInfo:
        return RouteInfo(model, request.session_key, lambda: bytes(request.prompt).decode(errors="replace"))


def simulate(
    policy: str,
    source: Source,
    *,
    replicas: int,
    rate_per_s: float,
    requests: int,
    params: SimParams,
    seed: int,
    policy_options: dict[str, object] | None = None,
) -> RunStats:
    """Replay ``requests`` Poisson arrivals at ``rate_per_s`` through the gateway's router."""
    from inferplane.routing.policies import make_policy

    rng = random.Random(seed)
    cfg = parse_config({"deployments": [{"name": "sim", "replicas": 0, "policy": policy,
                                         "endpoints": [{"url": "http://127.0.0.1:9"}]}]})
    reps = [_Replica(f"replica-{i}") for i in range(replicas)]
    by_id = {r.endpoint_id: i for i, r in enumerate(reps)}
    gateways: list[tuple[EndpointRegistry, Router, list[Endpoint]]] = []
    for _ in range(params.gateways):
        registry = EndpointRegistry()
        router = Router(registry, cfg.deployments)
        router.policies["sim"] = make_policy(policy, **(policy_options or {}))
        eps = []
        for r in reps:
            ep = Endpoint(id=r.endpoint_id, deployment="sim", runtime="openai", url="http://127.0.0.1:9",
                          dialect=OPENAI_DIALECT, capacity=params.slots)
            registry.add(ep)
            registry.set_ready(ep, True)
            eps.append(ep)
        gateways.append((registry, router, eps))
    clock = time.process_time
    cpu = 0.0
    events: list[tuple[float, int, _Job | None]] = [(rng.expovariate(rate_per_s), 0, None)]
    seq = 1
    gw_rng = random.Random(seed + 1)
    next_scrape = params.scrape_s

    def scrape() -> None:
        for _reg, _router, eps in gateways:
            for ep, rep in zip(eps, reps, strict=True):
                ep.stats = EndpointStats(running=float(rep.running), waiting=float(len(rep.queue)))

    issued = 0
    end_s = 0.0
    warmup = int(requests * params.warmup_fraction)
    ttfts: list[float] = []
    prompt_tokens = cached_tokens = predicted_tokens = 0
    token_per_block = params.block_chars / params.chars_per_token
    served_counted = [0] * replicas
    predicted_any = False
    inflight = [0] * replicas  # running + queued, per replica
    area = [0.0] * replicas  # integral of inflight over the measured window
    since = [0.0] * replicas
    window: list[float] = []  # [start, end] of the measured window, in simulated seconds
    completed = 0

    def moved(i: int, now: float, delta: int) -> None:
        if window:
            area[i] += inflight[i] * (now - since[i])
            since[i] = now
        inflight[i] += delta

    def start(job: _Job, now: float) -> None:
        nonlocal seq, cached_tokens, prompt_tokens
        rep = reps[job.replica]
        rep.running += 1
        hit = _cache_lookup_and_fill(rep, job.request.hashes, params.cache_blocks)
        job.cached_blocks = hit
        req = job.request
        cached = min(req.prompt_tokens, int(hit * token_per_block))
        prefill = params.prefill_s_per_token * (req.prompt_tokens - cached)
        decode = params.decode_s_per_token * req.output_tokens
        if job.counted:
            ttfts.append(now - job.arrival_s + prefill)
            prompt_tokens += req.prompt_tokens
            cached_tokens += cached
        heapq.heappush(events, (now + prefill + decode, seq, job))
        seq += 1

    while events:
        now, _, job = heapq.heappop(events)
        if job is None:  # arrival
            if params.gateways > 1 and now >= next_scrape:
                scrape()
                next_scrape = now + params.scrape_s
            registry, router, _eps = gateways[gw_rng.randrange(params.gateways)]
            request = source.next(now)
            t0 = clock()
            info = _route_info("sim", request)
            choice = router.pick(info, set())
            assert choice is not None
            release = registry.acquire(choice.endpoint)
            router.succeeded(choice)
            cpu += clock() - t0
            counted = issued >= warmup
            if counted and not window:
                window.append(now)
                since[:] = [now] * replicas
            new = _Job(request, info, choice, release, now, by_id[choice.endpoint.id], counted, router=router)
            predicted = choice.predicted_cached_blocks
            if counted and predicted is not None:
                predicted_any = True
                predicted_tokens += min(request.prompt_tokens, int(predicted * token_per_block))
            rep = reps[new.replica]
            moved(new.replica, now, 1)
            rep.served += 1
            if counted:
                served_counted[new.replica] += 1
            if rep.running < params.slots:
                start(new, now)
            else:
                rep.queue.append(new)
            issued += 1
            if issued < requests:
                heapq.heappush(events, (now + rng.expovariate(rate_per_s), seq, None))
                seq += 1
            continue
        rep = reps[job.replica]  # completion
        rep.running -= 1
        moved(job.replica, now, -1)
        if job.counted:
            completed += 1
            end_s = now
        source.finished(job.request, now)
        t0 = clock()
        if params.feedback and job.router is not None:
            job.router.observed(job.choice, job.info, int(job.cached_blocks * token_per_block))
        job.release()
        cpu += clock() - t0
        if rep.queue:
            start(rep.queue.popleft(), now)

    ttfts.sort()
    mean_served = statistics.fmean(served_counted) if served_counted else 0.0
    span = end_s - window[0] if window and completed else 0.0
    for i in range(replicas):
        moved(i, end_s if completed else 0.0, 0)
    mean_area = statistics.fmean(area) if area else 0.0
    return RunStats(
        requests=len(ttfts),
        hit_rate=cached_tokens / prompt_tokens if prompt_tokens else 0.0,
        predicted_hit_rate=(
            predicted_tokens / prompt_tokens if predicted_any and prompt_tokens else None
        ),
        ttft_p50_s=_percentile(ttfts, 0.50),
        ttft_p99_s=_percentile(ttfts, 0.99),
        max_over_mean=max(served_counted) / mean_served if mean_served else math.nan,
        cv=statistics.pstdev(served_counted) / mean_served if mean_served else math.nan,
        decision_us=cpu / max(issued, 1) * 1e6,
        throughput_rps=completed / span if span else math.nan,
        inflight_max_over_mean=max(area) / mean_area if mean_area else math.nan,
    )
