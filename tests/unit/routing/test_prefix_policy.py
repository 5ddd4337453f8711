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
    policy.observe_cached("e0", longer, decision.predicted_blocks, decision.predicted_blocks)
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


def busy(*loads: float, capacity: int = 4) -> list[Candidate]:
    """Runtimes whose scraped work (``running``, in requests per slot) another gateway sent."""
    return [Candidate(f"e{i}", running=round(x * capacity), capacity=capacity) for i, x in enumerate(loads)]


def with_peers(policy: PrefixPolicy, n: int) -> PrefixPolicy:
    for i in range(n):
        policy.on_added(f"e{i}")
    for _ in range(64):  # decisions over runtimes busy with work this gateway did not send
        policy.choose(RouteRequest(model="m"), busy(*[0.5] * n))
    assert policy.peers_seen()
    return policy


def alone(policy: PrefixPolicy, n: int) -> PrefixPolicy:
    for i in range(n):
        policy.on_added(f"e{i}")
    for _ in range(64):  # decisions over runtimes that run just what this gateway sent
        policy.choose(RouteRequest(model="m"), [Candidate(f"e{i}", in_flight=2, running=2, capacity=4)
                                                for i in range(n)])
    assert not policy.peers_seen()
    return policy


@pytest.mark.parametrize(
    ("in_flight", "scraped", "peers"),
    [
        (2, 2, False),  # the runtimes run what this gateway sent: alone
        (2, 0, False),  # no scrapes (embedded runtimes, or none yet): alone
        (3, 2, False),  # in flight here, not yet (or no longer) counted by the runtime
        (2, 4, True),  # half the work came from elsewhere: another gateway
        (1, 4, True),  # three quarters: three other gateways
        (0, 0, True),  # idle: nothing learnt; it starts by assuming other gateways
    ],
)
def test_peer_share_tells_a_lone_gateway_from_one_of_several(in_flight: int, scraped: int, peers: bool) -> None:
    policy = PrefixPolicy()
    cands = [Candidate(f"e{i}", in_flight=in_flight, running=scraped, capacity=8) for i in range(3)]
    for _ in range(200):
        policy.choose(RouteRequest(model="m"), cands)
    assert policy.peers_seen() is peers


def test_two_gateways_send_a_prefix_neither_has_seen_to_the_same_replica() -> None:
    a, b = with_peers(PrefixPolicy(), 6), with_peers(PrefixPolicy(seed=7), 6)
    cands = busy(0.25, 0.25, 0.25, 0.25, 0.25, 0.25)
    prompts = [f"conversation {k}: " + "hello there " * 30 for k in range(40)]
    homes_a = [route(a, req(t), cands) for t in prompts]
    homes_b = [route(b, req(t), cands) for t in reversed(prompts)][::-1]
    assert homes_a == homes_b, "same ids, same prefix -> same replica, whatever each gateway saw before"
    assert len(set(homes_a)) >= 4, "new prefixes still spread over the replicas"


def test_a_lone_gateway_places_a_new_prefix_by_load_not_by_its_home() -> None:
    lone, shared = alone(PrefixPolicy(), 4), with_peers(PrefixPolicy(), 4)
    prompts = [f"conversation {k}: " + "hello there " * 30 for k in range(24)]
    loads = [0.5, 0.25, 0.5, 0.5]  # e1 has one request per slot less than the others
    by_load = [route(lone, req(t), pool(*[round(x * 4) for x in loads])) for t in prompts]
    assert set(by_load) == {"e1"}, "alone, a new prefix goes where there is room"
    by_home = [route(shared, req(t), busy(*loads)) for t in prompts]
    assert len(set(by_home)) >= 3, "behind other gateways it goes to its home, spread over the ring"


@pytest.mark.parametrize(
    ("others", "home", "goes_home"),
    [
        (0.0, 0.5, True),  # within the balance guard's absolute threshold (1 request per slot)
        (0.0, 1.5, False),  # 1.5 per slot busier than an idle replica: the guard moves it
        (3.0, 4.25, True),  # 1.25 busier, within home_slack, and < 1.5 x the least loaded
        (3.0, 5.25, False),  # 2.25 busier: beyond home_slack
    ],
)
def test_with_peers_a_new_prefix_goes_home_unless_load_says_otherwise(
    others: float, home: float, goes_home: bool
) -> None:
    p = with_peers(PrefixPolicy(), 3)
    text = "a prompt nobody sent before " * 20
    home_id = p.choose(req(text), busy(others, others, others)).endpoint_id
    loads = [home if f"e{i}" == home_id else others for i in range(3)]
    assert (p.choose(req(text), busy(*loads)).endpoint_id == home_id) is goes_home


@pytest.mark.parametrize(
    ("home_share", "peers", "stays_home"),
    [
        (1.0, True, True),  # the home holds part of it: other gateways sent the rest there too
        (0.0, True, False),  # credit off: only the part this gateway saw counts, an idle replica wins
        (1.0, False, False),  # alone: this gateway saw every turn, its index is the whole truth
    ],
)
def test_a_home_that_holds_part_of_a_conversation_keeps_it(home_share: float, peers: bool, stays_home: bool) -> None:
    p = with_peers(PrefixPolicy(home_share=home_share), 3) if peers else alone(PrefixPolicy(home_share=home_share), 3)
    first = "user: tell me about rivers " * 8
    from inferplane.routing.policies._load import CandidateList

    home_id = p.ring.home(req(first).prefix_hashes[0], CandidateList(busy(0, 0, 0))).endpoint_id
    warm(p, home_id, first)  # this gateway routed turn 1; turns 2 and 3 went through another one
    later = first + "assistant: rivers flow. user: and lakes? " * 12
    loads = [0.5 if f"e{i}" == home_id else 0.0 for i in range(3)]
    cands = busy(*loads) if peers else pool(*[round(x * 4) for x in loads])
    assert (p.choose(req(later), cands).endpoint_id == home_id) is stays_home


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


def test_a_replica_that_leaves_and_comes_back_keeps_the_prefixes_it_was_home_for() -> None:
    from inferplane.routing.policies._load import CandidateList
    from inferplane.routing.policies.prefix import HomeRing

    ring = HomeRing()
    for i in range(8):
        ring.add(f"e{i}")
    everyone = CandidateList([Candidate(f"e{i}") for i in range(8)])
    rest = CandidateList([Candidate(f"e{i}") for i in range(8) if i != 5])
    keys = [k * 0x9E3779B97F4A7C15 % (1 << 64) for k in range(300)]
    before = {k: ring.home(k, everyone).endpoint_id for k in keys}
    ring.remove("e5")  # a failed probe: out of the pool for a while
    gone = {k: ring.home(k, rest).endpoint_id for k in keys}
    assert "e5" not in gone.values() and all(gone[k] == before[k] for k in keys if before[k] != "e5")
    ring.add("e5")
    assert {k: ring.home(k, everyone).endpoint_id for k in keys} == before
