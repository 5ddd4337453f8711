"""Cache-locality routing: prefix matches against load, and index corrections."""

from __future__ import annotations

import pytest

from inferplane.routing.policies import PrefixDecision, PrefixPolicy
from inferplane.routing.prefix import prefix_block_hashes
from inferplane.routing.types import Candidate, RouteRequest

SYSTEM = "You are a careful assistant. " * 40  # ~1.1 KB shared prefix


def req(text: str) -> RouteRequest:
    return RouteRequest(model="m", prefix_hashes=prefix_block_hashes(text, 64))


def pool(*loads: int, capacity: int = 4) -> list[Candidate]:
    return [Candidate(f"e{i}", in_flight=x, capacity=capacity) for i, x in enumerate(loads)]


def route(policy: PrefixPolicy, request: RouteRequest, candidates: list[Candidate]) -> str:
    decision = policy.choose(request, candidates)
    policy.on_routed(request, decision.endpoint_id)
    return decision.endpoint_id


def warm(policy: PrefixPolicy, endpoint_id: str, text: str) -> None:
    policy.on_routed(req(text), endpoint_id)


@pytest.mark.parametrize(
    ("warm_on", "loads", "expected"),
    [
        ("e2", (0, 0, 0, 0), "e2"),  # shared prefix wins over equal load
        ("e2", (0, 0, 1, 0), "e2"),  # ... and over a small load gap
        ("e1", (1, 1, 3, 1), "e1"),
        ("e3", (0, 0, 0, 3), "e3"),  # gap 0.75 slot: within the balance threshold
    ],
)
def test_prefix_goes_where_the_prefix_was_served(
    warm_on: str, loads: tuple[int, ...], expected: str
) -> None:
    policy = PrefixPolicy()
    warm(policy, warm_on, SYSTEM + "first question")
    decision = policy.choose(req(SYSTEM + "second, different question"), pool(*loads))
    assert decision.endpoint_id == expected
    assert isinstance(decision, PrefixDecision)
    assert decision.predicted_blocks == len(prefix_block_hashes(SYSTEM, 64))
    assert not decision.fell_back
    assert decision.scores[expected] == min(decision.scores.values())
    assert set(decision.matched_blocks) == set(decision.scores) == {f"e{i}" for i in range(4)}


@pytest.mark.parametrize(
    ("loads", "abs_threshold", "rel_threshold", "expected", "fell_back"),
    [
        ((1, 12, 1), 1.0, 1.5, "e0", True),  # 3 slots busier than the least loaded: fall back
        ((1, 12, 1), 4.0, 1.5, "e1", False),  # larger absolute threshold tolerates it
        ((8, 12, 8), 1.0, 1.6, "e1", False),  # relative gap too small (12 < 1.6 * 8)
        ((0, 6, 2), 1.0, 1.5, "e0", True),
    ],
)
def test_prefix_falls_back_to_load_when_imbalanced(
    loads: tuple[int, ...],
    abs_threshold: float,
    rel_threshold: float,
    expected: str,
    fell_back: bool,
) -> None:
    policy = PrefixPolicy(
        w_cache=100.0,  # locality would win at any load without the guard
        balance_abs_threshold=abs_threshold,
        balance_rel_threshold=rel_threshold,
    )
    warm(policy, "e1", SYSTEM)
    decision = policy.choose(req(SYSTEM + "question"), pool(*loads))
    assert decision.endpoint_id == expected
    assert decision.fell_back is fell_back
    assert decision.scores[expected] == min(decision.scores.values())


def test_prefix_prefers_the_longest_match() -> None:
    policy = PrefixPolicy()
    history = SYSTEM + "user: hi\nassistant: hello, how can I help you today?\n" * 4
    warm(policy, "e0", SYSTEM)
    warm(policy, "e1", history)
    decision = policy.choose(req(history + "user: and then?"), pool(0, 0, 0))
    assert decision.endpoint_id == "e1"
    assert decision.matched_blocks["e1"] > decision.matched_blocks["e0"] > 0
    assert decision.matched_blocks["e2"] == 0


def test_prefix_conversation_stays_put_and_new_prompts_spread() -> None:
    policy = PrefixPolicy()
    candidates = pool(0, 0, 0, 0)
    history = SYSTEM
    homes = set()
    for turn in range(5):
        history += f"user: question {turn} " * 10
        homes.add(route(policy, req(history), candidates))
    assert len(homes) == 1
    # unrelated prompts with no cached prefix rotate over the equally loaded replicas
    fresh = {route(policy, req(f"{i} unrelated " * 30), candidates) for i in range(4)}
    assert fresh == {"e0", "e1", "e2", "e3"}


def test_prefix_works_across_heterogeneous_capacities() -> None:
    policy = PrefixPolicy()
    warm(policy, "vllm-0", SYSTEM)
    candidates = [
        Candidate("llamacpp-0", in_flight=0, capacity=1),
        Candidate("vllm-0", in_flight=8, capacity=16),
    ]
    assert policy.choose(req(SYSTEM + "q"), candidates).endpoint_id == "vllm-0"


@pytest.mark.parametrize(
    ("observed", "after"),
    [
        (0, 0),  # runtime had nothing (or does not cache prefixes): forget it all
        (5, 5),  # fewer than predicted: forget the unmatched tail
        (16, 16),  # as predicted: keep
    ],
)
def test_observe_cached_corrects_the_index(observed: int, after: int) -> None:
    policy = PrefixPolicy()
    request = req(SYSTEM)
    blocks = len(request.prefix_hashes)
    assert blocks == 16  # 18 blocks of 64 bytes; the index knows them up to checkpoint 16
    warm(policy, "e0", SYSTEM)  # predicted from now on: 16 blocks
    again = policy.choose(request, pool(0, 0))
    assert again.endpoint_id == "e0" and again.predicted_blocks == blocks
    policy.on_routed(request, "e0")
    policy.observe_cached("e0", request, observed)
    assert policy.index.match("e0", request.prefix_hashes) == after


def test_observe_cached_keeps_new_tail_when_prediction_held() -> None:
    policy = PrefixPolicy()
    warm(policy, "e0", SYSTEM)
    longer = req(SYSTEM + "x" * 640)
    decision = policy.choose(longer, pool(0, 0))
    policy.on_routed(longer, decision.endpoint_id)
    # runtime reports exactly the predicted prefix cached: the new tail it just computed stays
    policy.observe_cached("e0", longer, decision.predicted_blocks)
    assert policy.index.match("e0", longer.prefix_hashes) == len(longer.prefix_hashes)


def test_on_removed_forgets_endpoint() -> None:
    policy = PrefixPolicy()
    warm(policy, "e0", SYSTEM)
    policy.on_removed("e0")
    decision = policy.choose(req(SYSTEM), pool(0, 0))
    assert decision.matched_blocks == {"e0": 0, "e1": 0}


def test_prefix_without_hashes_is_least_load() -> None:
    policy = PrefixPolicy()
    decision = policy.choose(RouteRequest(model="m"), pool(3, 1, 2))
    assert decision.endpoint_id == "e1"
    assert decision.scores == {"e0": 0.75, "e1": 0.25, "e2": 0.5}


def test_prefix_index_bound_applies_per_endpoint() -> None:
    policy = PrefixPolicy(max_blocks_per_endpoint=8)
    for i in range(20):
        warm(policy, "e0", f"{i:04d}" * 100)
    assert policy.index.size("e0") == 8


def test_two_gateways_send_a_prefix_neither_has_seen_to_the_same_replica() -> None:
    a, b = PrefixPolicy(), PrefixPolicy(seed=7)
    for p in (a, b):
        for i in range(6):
            p.on_added(f"e{i}")
    cands = pool(0, 0, 0, 0, 0, 0)
    prompts = [f"conversation {k}: " + "hello there " * 30 for k in range(40)]
    homes_a = [route(a, req(t), cands) for t in prompts]
    homes_b = [route(b, req(t), cands) for t in reversed(prompts)][::-1]
    assert homes_a == homes_b, "same ids, same prefix -> same replica, whatever each gateway saw before"
    assert len(set(homes_a)) >= 4, "new prefixes still spread over the replicas"


def test_a_new_prefix_leaves_its_home_when_the_home_is_overloaded() -> None:
    p = PrefixPolicy()
    for i in range(3):
        p.on_added(f"e{i}")
    text = "a prompt nobody sent before " * 20
    home = p.choose(req(text), pool(0, 0, 0)).endpoint_id
    loads = [8 if f"e{i}" == home else 0 for i in range(3)]
    assert p.choose(req(text), pool(*loads)).endpoint_id != home


def test_removing_a_replica_moves_only_the_prefixes_it_was_home_for() -> None:
    from inferplane.routing.policies._load import CandidateList
    from inferplane.routing.policies.prefix import HomeRing

    ring = HomeRing()
    for i in range(8):
        ring.add(f"e{i}")
    everyone = CandidateList([Candidate(f"e{i}") for i in range(8)])
    keys = [k * 0x9E3779B97F4A7C15 % (1 << 64) for k in range(500)]
    before = {k: ring.home(k, everyone).endpoint_id for k in keys}
    ring.remove("e3")
    rest = CandidateList([Candidate(f"e{i}") for i in range(8) if i != 3])
    after = {k: ring.home(k, rest).endpoint_id for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert moved and all(before[k] == "e3" for k in moved)
    assert 500 / 8 / 3 < len(moved) < 500 / 8 * 3, "e3 owned about its share of the keys"
