"""The router: which replica serves a request, with tiers, breakers and fallback.

Owns, per deployment, its policy; per endpoint, its circuit breaker; and a bounded log
of recent decisions for ``GET /admin/routing``. ``pick`` is synchronous and does no I/O;
the gateway reports each attempt's outcome back (``succeeded`` / ``failed``) so the
breakers and the prefix index learn.

Order of choice for one attempt:
1. ready endpoints of the deployment, minus those already tried for this request and
   those whose breaker is open;
2. if none: the same for the deployment's ``fallback`` deployment (one hop);
3. among them, the best tier (priority, then preferred region) that is not saturated;
4. within the tier, the deployment's policy (skipped when the tier has one member).

Cost: no step looks at every endpoint. The candidate sets (``routing/candidates.py``)
are kept by the registry's change and load notifications, grouped by tier, each tier
with its least loaded member at hand; "not saturated" is that member's load; tried and
open-breaker endpoints are skipped where a policy looks, not filtered out beforehand;
policies sample (see ``types.Policy``). The prompt is hashed only for policies that
read it (``needs_prefix``), lazily (``routing/prefix.py``).

When a deployment (and its fallback) has no ready replica at all, ``wait_pick`` holds the
request in the ``HeldQueue`` until one becomes ready (startup, restart after a crash,
scale from zero) and then picks as above.

Saturation: a replica is full when it has ``bound`` requests in flight, where ``bound`` is
the deployment's ``max_concurrent_per_replica``, else the sequence slots of a replica
inferplane launched (``capacity`` = ``max_concurrent_sequences``: the embedded runtime's and
llama.cpp's parallel slots, vLLM's max-num-seqs), else none (listed endpoints, slots
unknown). A full replica is skipped like a tried one (not for a retry: a request whose replica failed
it goes on to the next one at once, full or not); when every ready replica is full,
``pick`` finds nothing and ``wait_pick`` holds the request in the same ``HeldQueue``, which
lets one go each time a replica has room again (``load_changed``), in the queue's order
(``routing.fair.FairOrdering`` under ``serve``: priority, then fair across tenants). While
requests of a deployment are held, new ones queue behind them instead of taking the
next free place.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from inferplane.config import DeploymentConfig
from inferplane.routing.breaker import Breaker, BreakerState
from inferplane.routing.candidates import CandidatePools, Tier, TierView
from inferplane.routing.held import HeldQueue, HeldTimeout, NoReplica
from inferplane.routing.policies import PrefixDecision, PrefixPolicy, make_policy
from inferplane.routing.prefix import DEFAULT_BLOCK_BYTES, checkpoint_hashes, prompt_view
from inferplane.routing.registry import Endpoint, EndpointRegistry, EndpointState
from inferplane.routing.sessions import RecentSessions
from inferplane.routing.types import Decision, Policy, RouteRequest

__all__ = ["Choice", "RouteInfo", "Router"]

log = logging.getLogger(__name__)

_NO_IDS: list[str] = []
_Logged = tuple[float, str, Endpoint, Decision, bool, int, list[str], int | None]
"""One ``Router.decision_log`` entry as kept: time, model, endpoint, decision, fallback, tier
size, excluded ids, predicted cached blocks."""

_CHARS_PER_TOKEN = 4
"""Rough characters per token, to turn reported cached tokens into prompt blocks."""


@dataclass(slots=True)
class RouteInfo:
    """What routing needs to know of one request, computed lazily (hashing costs).

    ``prompt`` is the request body exactly as received (the prompt is found and hashed in
    place, see ``routing.prefix.prompt_view``), a memoryview of the prompt itself, or a callable returning the prompt as text
    for callers that only have that (it is encoded once, when a policy needs it).
    """

    model: str
    session_key: str | None
    prompt: bytes | memoryview | Callable[[], str]
    _request: RouteRequest | None = None
    tenant: str | None = None
    """Who sent it (for the held-request queue's fairness)."""
    priority: int = 1
    """Its admission class if it has to wait (``config.tenants.PRIORITIES``: 0 high, 1 normal, 2 low)."""

    def request(self, policy: Policy) -> RouteRequest:
        if self._request is None:
            hashes: list[int] | tuple[()] = ()
            if policy.needs_prefix:
                p = self.prompt
                hashes = checkpoint_hashes(prompt_view(p) if isinstance(p, (bytes, memoryview)) else p().encode())
            self._request = RouteRequest(self.model, prefix_hashes=hashes, session_key=self.session_key)
        return self._request


@dataclass(slots=True, eq=False)
class Choice:
    """The router's answer to one ``pick``; read-only for its callers. Not ``frozen=True``: one
    is made per request, and a frozen dataclass's ``__init__`` costs 3.4x as much (7.2k vs 2.1k
    CPU instructions for these four fields, callgrind)."""

    endpoint: Endpoint
    policy: str
    fallback: bool
    predicted_cached_blocks: int | None = None


class Router:
    def __init__(self, registry: EndpointRegistry, deployments: Sequence[DeploymentConfig], *,
                 preferred_region: str | None = None, log_size: int = 200,
                 clock: Callable[[], float] = time.monotonic, held: HeldQueue | None = None) -> None:
        self.registry = registry
        self.deployments = {d.name: d for d in deployments}
        self.policies: dict[str, Policy] = {d.name: make_policy(d.policy) for d in deployments}
        self.preferred_region = preferred_region
        self.breakers: dict[str, Breaker] = {}
        self._decisions: collections.deque[_Logged] = collections.deque(maxlen=log_size)
        self.decision_counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.prefix_predicted_blocks: collections.Counter[str] = collections.Counter()
        self.prefix_observed_blocks: collections.Counter[str] = collections.Counter()
        self._clock = clock
        self._kv_tokens: dict[str, float] = {}
        """Last KV capacity (tokens) passed on to the prefix index, per endpoint."""
        self._unhealthy: set[str] = set()
        """Endpoints whose breaker is not closed (the only ones whose breaker pick asks)."""
        self.pools = CandidatePools(registry, preferred_region=preferred_region,
                                    on_join=self._joined, on_leave=self._removed)
        self.held = held
        self.sessions = RecentSessions()
        """Where recent sessions were served (read by the controller when it picks a replica to drain)."""
        self._bounded: set[str] = {d.name for d in deployments if _may_bound(d)}
        """Deployments whose replicas may have a concurrency bound (``bound``)."""
        registry.on_state(self._state_changed)
        self._load_listening = False
        self._listen_loads()

    def _listen_loads(self) -> None:
        """Hear of every acquire and release (a released request may make room for a held one),
        from the first time a deployment may have a bound on: with none (every replica
        unbounded, nothing is ever held for room) the per-request calls are skipped."""
        if self._bounded and self.held is not None and not self._load_listening:
            self._load_listening = True
            self.registry.on_load(self.load_changed)

    def bound(self, ep: Endpoint) -> int | None:
        """Requests ``ep`` may have in flight before it counts as full (None: no bound)."""
        dep = self.deployments.get(ep.deployment)
        if dep is None:
            return None
        if dep.max_concurrent_per_replica is not None:
            return dep.max_concurrent_per_replica
        return ep.capacity if ep.managed else None

    def room(self, deployment: str, tried: set[str] | frozenset[str] = frozenset()) -> int:
        """Free places on the ready replicas of ``deployment`` not in ``tried`` (a large number when
        one is unbounded)."""
        free = 0
        for ep in self.registry.ready(deployment):
            if ep.id in tried:
                continue
            b = self.bound(ep)
            if b is None:
                return 1 << 30
            free += max(0, b - ep.in_flight)
        return free

    def _let_go(self, deployment: str) -> None:
        """Let as many held requests of ``deployment`` go as its replicas have room for."""
        held = self.held
        if held is not None and held.depth(deployment):
            room = self.room(deployment)
            if room:
                held.release(deployment, room)

    def breaker(self, ep: Endpoint) -> Breaker:
        b = self.breakers.get(ep.id)
        if b is None:
            cfg = self.deployments[ep.deployment].breaker
            b = self.breakers[ep.id] = Breaker(failure_threshold=cfg.failure_threshold, open_s=cfg.open_s)
        return b

    def breaker_state(self, ep: Endpoint) -> BreakerState:
        b = self.breakers.get(ep.id)
        return BreakerState.CLOSED if b is None else b.state

    def _joined(self, ep: Endpoint) -> None:
        policy = self.policies.get(ep.deployment)
        if policy is not None:
            policy.on_added(ep.id)

    def _removed(self, ep: Endpoint) -> None:
        policy = self.policies.get(ep.deployment)
        if policy is not None:
            policy.on_removed(ep.id)

    def _state_changed(self, ep: Endpoint, _was: EndpointState) -> None:
        if ep.state is EndpointState.STOPPED:
            self.sessions.forget(ep.id)
        if ep.state is EndpointState.READY and self.held is not None:
            if ep.deployment in self._bounded:
                self._let_go(ep.deployment)
            else:
                self.held.release(ep.deployment)
            for d in self.deployments.values():
                if d.fallback == ep.deployment:
                    self.held.release(d.name)

    def set_deployments(self, deployments: Sequence[DeploymentConfig]) -> None:
        """Serve this set of deployments from now on (reload): new ones get a policy, removed
        ones lose theirs and their held requests are let go (they then find no deployment)."""
        new = {d.name: d for d in deployments}
        for name in self.deployments.keys() - new.keys():
            self.policies.pop(name, None)
        for d in deployments:
            old = self.deployments.get(d.name)
            if old is None or old.policy != d.policy:
                policy = self.policies[d.name] = make_policy(d.policy)
                for ep in self.registry.endpoints(d.name):  # a new policy learns the members it has
                    if self.registry.routable(ep):
                        policy.on_added(ep.id)
        gone = self.deployments.keys() - new.keys()
        self.deployments = new
        self._bounded = {d.name for d in deployments if _may_bound(d)}
        self._listen_loads()
        if self.held is not None:
            for name in gone:
                self.held.release(name)

    async def wait_pick(self, info: RouteInfo, tried: set[str]) -> Choice:
        """Hold the request until a replica of its deployment is ready (or, when every one is full,
        has room), then pick one.

        For requests that ``pick`` found nothing for; raises ``NoReplica`` (or its
        ``HeldTimeout`` / ``QueueFull``) when it cannot be served. Cancelling the caller
        (client gone) leaves the queue at once.
        """
        held = self.held
        ticket = held.ticket(info.model, tenant=info.tenant, priority=info.priority) if held is not None else None
        while True:
            dep = self.deployments.get(info.model)
            if dep is None:
                raise NoReplica(f"the model {info.model!r} is no longer served", retry_after_s=1.0)
            if held is None or ticket is None:
                raise NoReplica(f"no ready replica for model {info.model!r}; try again shortly", retry_after_s=1.0)
            if self.registry.ready(dep.name) or (dep.fallback is not None and self.registry.ready(dep.fallback)):
                if dep.name not in self._bounded:
                    # replicas are up but none may be tried (breakers open): waiting would not help
                    raise NoReplica(f"no ready replica for model {info.model!r}; try again shortly",
                                    retry_after_s=1.0)
                room = self.room(dep.name)
                if room and not held.depth(dep.name):
                    # there is room, or nothing left to try: waiting would not help
                    choice = self.pick(info, tried, waited=True)
                    if choice is not None:
                        held.served(ticket)
                        return choice
                    raise NoReplica(f"no ready replica for model {info.model!r}; try again shortly",
                                    retry_after_s=1.0)
                # every replica is full, or others wait already: queue (and if there is room
                # after all, let the first in the queue's order go once this one is in it)
                asyncio.get_running_loop().call_soon(self._let_go, dep.name)
            try:
                await held.wait(ticket)
            except HeldTimeout as exc:
                if not self.registry.ready(dep.name):
                    raise
                raise HeldTimeout(f"every replica of {dep.name!r} stayed full for {held.timeout_s:g} s "
                                  "(the gateway holds requests while replicas are busy); try again shortly",
                                  retry_after_s=exc.retry_after_s) from None
            if info.model not in self.deployments:
                continue
            choice = self.pick(info, tried, waited=True)
            if choice is not None:
                held.served(ticket)
                return choice

    def _skipper(self, tried: set[str], now: float, bounded: bool) -> Callable[[str], bool] | None:
        """What one attempt must skip: tried endpoints, those whose breaker says no, and (for
        a deployment with a concurrency bound) full ones."""
        unhealthy = self._unhealthy
        if not bounded:
            if not tried and not unhealthy:
                return None
            breakers = self.breakers

            def skip(endpoint_id: str) -> bool:
                return endpoint_id in tried or (endpoint_id in unhealthy and
                                                not breakers[endpoint_id].would_allow(now))

            return skip
        breakers = self.breakers
        get = self.registry.get
        bound = self.bound

        def skip_full(endpoint_id: str) -> bool:
            if endpoint_id in tried or (endpoint_id in unhealthy and not breakers[endpoint_id].would_allow(now)):
                return True
            ep = get(endpoint_id)
            if ep is None:
                return True
            b = bound(ep)
            return b is not None and ep.in_flight >= b

        return skip_full

    def _tier(self, deployment: str, skip: Callable[[str], bool] | None) -> tuple[Tier, int] | None:
        """The tier to route in and how many tiers the deployment has, or None if nothing is usable."""
        tiers = self.pools.tiers(deployment)
        if len(tiers) == 1:
            t = tiers[0]
            return (t, 1) if skip is None or t.any_member(skip) is not None else None
        saturation = self.deployments[deployment].saturation if deployment in self.deployments else 1.0
        first = None
        for t in tiers:
            e = t.least_loaded(skip, rotate=False)
            if e is None:
                continue
            if first is None:
                first = t
            if max(e.in_flight, int(e.stats.running or 0) + int(e.stats.waiting or 0)) < saturation * max(e.capacity, 1):
                return t, len(tiers)
        return (first, len(tiers)) if first is not None else None

    def pick(self, info: RouteInfo, tried: set[str], *, waited: bool = False) -> Choice | None:
        """The endpoint for the next attempt, or None when nothing can serve the request now
        (none ready, every one full, or - unless ``waited`` - others are held for one)."""
        dep = self.deployments[info.model]
        now = self._clock()
        # a retry (``tried``) is not held for room: it waited once already, and its replica
        # failed it - it goes to the next replica even if that one is full (as before bounds)
        bounded = dep.name in self._bounded and not tried
        if bounded and not waited and self.held is not None and self.held.depth(dep.name):
            return None  # a new request queues behind the requests already held
        skip = self._skipper(tried, now, bounded)
        owner = dep.name
        found = self._tier(owner, skip)
        fallback = False
        if found is None and dep.fallback is not None:
            owner = dep.fallback
            found = self._tier(owner, skip)
            fallback = True
        if found is None:
            return None
        tier, n_tiers = found
        policy = self.policies[owner]
        if len(tier) == 1:
            ep = tier.members[0]
            choice = Choice(ep, "only" if n_tiers == 1 else "tier", fallback)
        else:
            rr = info.request(policy)
            decision = policy.choose(rr, TierView(tier, skip))
            ep = tier.members[tier.pos[decision.endpoint_id]]
            kv = ep.stats.kv_cache_tokens
            if kv is not None and self._kv_tokens.get(ep.id) != kv and isinstance(policy, PrefixPolicy):
                self._kv_tokens[ep.id] = kv  # mirror the runtime's cache size in the index's bound
                policy.set_capacity(ep.id, max(1, int(kv) * _CHARS_PER_TOKEN // DEFAULT_BLOCK_BYTES))
            policy.on_routed(rr, decision.endpoint_id)
            predicted = decision.predicted_blocks if isinstance(decision, PrefixDecision) else None
            choice = Choice(ep, decision.policy, fallback, predicted)
            # what the log shows, as a tuple: its dicts are made when someone reads it (decision_log)
            self._decisions.append((time.time(), info.model, ep, decision, fallback, len(tier),
                                    sorted(tried) if tried else _NO_IDS, predicted))
        b = self.breakers.get(ep.id)
        if b is not None:
            b.allow(now)  # takes the half-open trial slot
        self.decision_counts[(owner, choice.policy)] += 1
        return choice

    def decision_log(self) -> list[dict[str, Any]]:
        """The last ``log_size`` routing decisions among several replicas, oldest first: when,
        which model, the endpoint, the policy and every scored candidate's score, whether it
        fell back to another deployment, the tier it chose in, the replicas a retry excluded,
        and the blocks predicted cached (prefix policy)."""
        return [{"time": t, "model": model, "endpoint": ep.id, "policy": decision.policy, "fallback": fallback,
                 "scores": decision.scores, "tier": {"priority": ep.priority, "region": ep.region, "size": size},
                 "excluded": excluded, "predicted_cached_blocks": predicted}
                for t, model, ep, decision, fallback, size, excluded, predicted in self._decisions]

    def prefix_index_blocks(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(deployment, endpoint) -> (blocks the prefix index remembers, its bound): for metrics."""
        out = {}
        for dep, policy in self.policies.items():
            if isinstance(policy, PrefixPolicy):
                index = policy.index
                for eid in index.endpoints():
                    out[(dep, eid)] = (index.size(eid), index.capacity(eid))
        return out

    def succeeded(self, choice: Choice) -> None:
        """The endpoint answered (any status below 500)."""
        ep = choice.endpoint
        b = self.breakers.get(ep.id)
        if b is not None:
            if b.state is not BreakerState.CLOSED:
                log.warning("breaker of %s closed: a trial request succeeded", ep.id)
            b.record_success()
            self._unhealthy.discard(ep.id)
        ep.consecutive_failures = 0

    def observed(self, choice: Choice, info: RouteInfo, cached_tokens: int | None) -> None:
        """What the runtime reported as cached for a served request (usage.prompt_tokens_details)."""
        ep = choice.endpoint
        if info.session_key is not None:
            self.sessions.seen(info.session_key, ep.id)
        if choice.predicted_cached_blocks is None or cached_tokens is None:
            return
        policy = self.policies[ep.deployment]
        observed = cached_tokens * _CHARS_PER_TOKEN // DEFAULT_BLOCK_BYTES
        self.prefix_predicted_blocks[ep.deployment] += choice.predicted_cached_blocks
        self.prefix_observed_blocks[ep.deployment] += observed
        if isinstance(policy, PrefixPolicy):
            policy.observe_cached(ep.id, info.request(policy), observed, choice.predicted_cached_blocks)

    def load_changed(self, ep: Endpoint) -> None:
        """A request was acquired or released on ``ep``: if it has room, let one held request go."""
        held = self.held
        if held is None or ep.deployment not in self._bounded or not ep.ready or not held.depth(ep.deployment):
            return
        b = self.bound(ep)
        if b is None or ep.in_flight < b:
            held.release(ep.deployment, 1)

    def failed(self, ep: Endpoint) -> None:
        """The endpoint failed a request (not one the request caused: those are ``succeeded``)."""
        ep.consecutive_failures += 1
        b = self.breaker(ep)
        was = b.state
        b.record_failure(self._clock())
        if b.state is not BreakerState.CLOSED:
            self._unhealthy.add(ep.id)
        if b.state is BreakerState.OPEN and was is not BreakerState.OPEN:
            log.warning("breaker of %s opened after %d consecutive failure(s): no traffic for %.0f s",
                        ep.id, ep.consecutive_failures, b.open_s)


def _may_bound(d: DeploymentConfig) -> bool:
    """Whether some replica of ``d`` has a concurrency bound: a set ``max_concurrent_per_replica``,
    or replicas inferplane launches (bounded by their slots)."""
    return d.max_concurrent_per_replica is not None or d.max_local_replicas() > 0
