"""Candidate sets kept by registry notifications, and routing that looks at O(1) endpoints."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

import pytest

from inferplane.config.models import parse_config
from inferplane.routing.candidates import CandidatePools, Tier, TierView
from inferplane.routing.policies import POLICY_NAMES
from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.routing.router import RouteInfo, Router
from inferplane.runtimes.base import OPENAI_DIALECT


def endpoint(eid: str, dep: str = "m", *, priority: int = 0, region: str | None = None,
             capacity: int = 2) -> Endpoint:
    return Endpoint(id=eid, deployment=dep, runtime="openai", url=f"http://127.0.0.1/{eid}",
                    dialect=OPENAI_DIALECT, capacity=capacity, priority=priority, region=region)


def members(pools: CandidatePools, dep: str = "m") -> list[set[str]]:
    return [{e.id for e in t.members} for t in pools.tiers(dep)]


# (operation, endpoint id) applied in order -> the tiers' members afterwards
@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ([("add", "a"), ("ready", "a")], [{"a"}]),
        ([("add", "a")], []),  # registered but not ready: not a candidate
        ([("add", "a"), ("ready", "a"), ("unready", "a")], []),
        ([("add", "a"), ("add", "b"), ("ready", "a"), ("ready", "b"), ("remove", "a")], [{"b"}]),
        ([("add", "a"), ("ready", "a"), ("ready", "a")], [{"a"}]),  # idempotent
        ([("add", "a"), ("add", "p1"), ("ready", "p1"), ("ready", "a")], [{"a"}, {"p1"}]),  # tiers, best first
        ([("add", "p1"), ("ready", "p1"), ("remove", "p1")], []),
    ],
)
def test_pools_follow_every_routable_change(ops: list[tuple[str, str]], expected: list[set[str]]) -> None:
    reg = EndpointRegistry()
    joined, left = Counter(), Counter()
    pools = CandidatePools(reg, on_join=lambda e: joined.update([e.id]), on_leave=lambda e: left.update([e.id]))
    eps = {}
    for op, eid in ops:
        if op == "add":
            eps[eid] = endpoint(eid, priority=1 if eid.startswith("p") else 0)
            reg.add(eps[eid])
        elif op == "remove":
            reg.remove(eid)
        else:
            reg.set_ready(eps[eid], op == "ready")
    assert members(pools) == expected
    in_pool = set().union(*expected) if expected else set()
    assert {e for e in joined if joined[e] > left[e]} == in_pool


def test_pools_are_built_from_what_the_registry_already_holds() -> None:
    reg = EndpointRegistry()
    for eid in ("a", "b"):
        ep = endpoint(eid)
        reg.add(ep)
        reg.set_ready(ep, eid == "a")
    assert members(CandidatePools(reg)) == [{"a"}]


def test_preferred_region_is_its_own_better_tier() -> None:
    reg = EndpointRegistry()
    pools = CandidatePools(reg, preferred_region="eu")
    for eid, region in (("us-1", "us"), ("eu-1", "eu"), ("eu-2", "eu")):
        ep = endpoint(eid, region=region)
        reg.add(ep)
        reg.set_ready(ep, True)
    assert members(pools) == [{"eu-1", "eu-2"}, {"us-1"}]


def _random_loads(rng: random.Random, n: int, steps: int) -> Iterator[tuple[EndpointRegistry, Tier, list[Endpoint]]]:
    """A tier of ``n`` endpoints of mixed capacity; yields after each of ``steps`` random
    acquires and releases."""
    reg = EndpointRegistry()
    pools = CandidatePools(reg)
    eps = [endpoint(f"e{i}", capacity=rng.choice([1, 2, 4])) for i in range(n)]
    for ep in eps:
        reg.add(ep)
        reg.set_ready(ep, True)
    tier = pools.tiers("m")[0]
    held = []
    for _ in range(steps):
        if held and rng.random() < 0.45:
            held.pop(rng.randrange(len(held)))()
        else:
            held.append(reg.acquire(rng.choice(eps)))
        yield reg, tier, eps


@pytest.mark.parametrize("seed", range(6))
def test_least_loaded_equals_a_scan_after_any_acquire_release_sequence(seed: int) -> None:
    rng = random.Random(seed)
    for reg, tier, eps in _random_loads(rng, 12, 300):
        if rng.random() < 0.1:  # a leaving and returning endpoint
            ep = rng.choice(eps)
            reg.set_ready(ep, False)
            reg.set_ready(ep, True)
        best = tier.least_loaded(None, rotate=False)
        want = min(ep.in_flight / ep.capacity for ep in eps)
        assert best is not None and best.in_flight / best.capacity == want
        assert tier.outstanding_total == sum(ep.in_flight for ep in eps)


@pytest.mark.parametrize("seed", range(4))
def test_least_loaded_with_members_skipped_equals_a_scan_of_the_others(seed: int) -> None:
    rng = random.Random(seed)
    for _, tier, eps in _random_loads(rng, 16, 300):
        skipped = {ep.id for ep in rng.sample(eps, rng.randrange(len(eps)))}
        best = tier.least_loaded(lambda eid, skipped=skipped: eid in skipped, rotate=rng.random() < 0.5)
        usable = [ep for ep in eps if ep.id not in skipped]
        assert best is not None and best.id not in skipped
        assert best.in_flight / best.capacity == min(ep.in_flight / ep.capacity for ep in usable)
    everyone = {ep.id for ep in eps}
    assert tier.least_loaded(lambda eid: eid in everyone, rotate=True) is None


def _ready_tier(n: int) -> Tier:
    """The one tier of ``n`` ready endpoints ``e0``..., of capacity 1, nothing in flight."""
    reg = EndpointRegistry()
    pools = CandidatePools(reg)
    for i in range(n):
        ep = endpoint(f"e{i}")
        reg.add(ep)
        reg.set_ready(ep, True)
    return pools.tiers("m")[0]


def test_exact_ties_are_taken_in_turn() -> None:
    tier = _ready_tier(5)
    firsts = [tier.least_loaded(None, rotate=True).id for _ in range(10)]
    assert sorted(firsts[:5]) == [f"e{i}" for i in range(5)] and firsts[5:] == firsts[:5]


def test_skipped_members_are_never_returned() -> None:
    usable = {"e7", "e31"}
    view = TierView(_ready_tier(50), lambda eid: eid not in usable)
    rng = random.Random(0)
    for _ in range(20):
        assert {c.endpoint_id for c in view.sample(2, rng)} == usable
        assert view.rotate(rng.randrange(50))[0].endpoint_id in usable
        assert view.least_loaded().endpoint_id in usable
    assert view.get("e8") is None and view.get("e7") is not None


def _fleet(policy: str, n: int) -> tuple[Router, EndpointRegistry]:
    cfg = parse_config({"deployments": [{"name": "m", "replicas": 0, "endpoints": [{"url": "http://x"}],
                                         "policy": policy}]})
    reg = EndpointRegistry()
    router = Router(reg, cfg.deployments)
    for i in range(n):
        ep = endpoint(f"e{i}", capacity=4)
        reg.add(ep)
        reg.set_ready(ep, True)
    return router, reg


def _body(system: str, question: str) -> bytes:
    return (b'{"model":"m","messages":[{"role":"system","content":"%s"},{"role":"user","content":"%s"}]}'
            % (system.encode(), question.encode()))


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_a_decision_among_1000_replicas_looks_at_a_handful(policy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    router, reg = _fleet(policy, 1000)
    looked = Counter()
    real = Endpoint.candidate

    def counting(self: Endpoint):  # type: ignore[no-untyped-def]
        looked["n"] += 1
        return real(self)

    monkeypatch.setattr(Endpoint, "candidate", counting)
    system = "You are a careful assistant. " * 40
    held = []
    for i in range(200):
        info = RouteInfo("m", f"user-{i % 30}", _body(system if i % 2 else f"{i} other", f"q{i}"))
        choice = router.pick(info, set())
        assert choice is not None
        held.append(reg.acquire(choice.endpoint))
        if len(held) > 50:
            held.pop(0)()
    assert looked["n"] / 200 <= 8  # snapshots built per decision, out of 1,000 endpoints
    assert all(len(d["scores"]) <= 8 for d in router.decision_log())


def test_prefix_finds_the_one_replica_of_1000_that_holds_the_prompt() -> None:
    router, _ = _fleet("prefix", 1000)
    system = "You are a careful assistant. " * 80
    first = router.pick(RouteInfo("m", None, _body(system, "first")), set())
    assert first is not None
    again = [router.pick(RouteInfo("m", None, _body(system, f"q{i}")), set()) for i in range(10)]
    assert {c.endpoint.id for c in again} == {first.endpoint.id}
    assert all(c.predicted_cached_blocks and c.predicted_cached_blocks >= 9 for c in again)


def test_prefix_spreads_an_overloaded_holder_over_the_fleet() -> None:
    router, reg = _fleet("prefix", 1000)
    system = "You are a careful assistant. " * 80
    first = router.pick(RouteInfo("m", None, _body(system, "first")), set())
    for _ in range(12):  # the holder is far busier than anyone else: 3 requests per slot
        reg.acquire(first.endpoint)
    nxt = router.pick(RouteInfo("m", None, _body(system, "next")), set())
    assert nxt is not None and nxt.endpoint.id != first.endpoint.id


def test_session_keys_stay_put_in_a_large_fleet_and_only_a_removed_replicas_move() -> None:
    router, reg = _fleet("session", 1000)
    homes = {k: router.pick(RouteInfo("m", f"user-{k}", b"{}"), set()).endpoint.id for k in range(40)}
    assert homes == {k: router.pick(RouteInfo("m", f"user-{k}", b"{}"), set()).endpoint.id for k in range(40)}
    gone = homes[0]
    reg.remove(gone)
    after = {k: router.pick(RouteInfo("m", f"user-{k}", b"{}"), set()).endpoint.id for k in range(40)}
    assert {k for k in homes if homes[k] != after[k]} == {k for k in homes if homes[k] == gone}


def test_least_load_spreads_evenly_over_a_large_fleet() -> None:
    router, reg = _fleet("least_load", 300)
    for _ in range(600):
        reg.acquire(router.pick(RouteInfo("m", None, b"{}"), set()).endpoint)
    assert {e.in_flight for e in reg.endpoints("m")} == {2}


def test_retries_and_open_breakers_are_skipped_in_a_large_fleet() -> None:
    router, reg = _fleet("power_of_two", 1000)
    tried = {f"e{i}" for i in range(990)}
    for i in range(990, 995):
        ep = reg.get(f"e{i}")
        for _ in range(5):
            router.failed(ep)
    picks = {router.pick(RouteInfo("m", None, b"{}"), tried).endpoint.id for _ in range(30)}
    assert picks <= {f"e{i}" for i in range(995, 1000)} and picks
