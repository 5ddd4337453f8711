"""Round robin, least load, power of two, and the policy registry."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from inferplane.routing.policies import (
    POLICY_NAMES,
    LeastLoadPolicy,
    PowerOfTwoPolicy,
    RoundRobinPolicy,
    UnknownPolicyError,
    make_policy,
)
from inferplane.routing.policies._load import load_ratio
from inferplane.routing.types import Candidate, RouteRequest

REQ = RouteRequest(model="m")


def cands(*loads: int, capacity: int = 1) -> list[Candidate]:
    return [Candidate(f"e{i}", in_flight=x, capacity=capacity) for i, x in enumerate(loads)]


@pytest.mark.parametrize(
    ("n", "calls", "expected"),
    [
        (1, 3, ["e0", "e0", "e0"]),
        (3, 7, ["e0", "e1", "e2", "e0", "e1", "e2", "e0"]),
        (2, 4, ["e0", "e1", "e0", "e1"]),
    ],
)
def test_round_robin_cycles(n: int, calls: int, expected: list[str]) -> None:
    policy = RoundRobinPolicy()
    candidates = cands(*([5] * n))
    got = [policy.choose(REQ, candidates).endpoint_id for _ in range(calls)]
    assert got == expected


def test_round_robin_looks_at_the_chosen_one_only() -> None:
    policy = RoundRobinPolicy()
    policy.choose(REQ, cands(0, 0, 0))
    decision = policy.choose(REQ, cands(0, 0, 0))
    assert decision.endpoint_id == "e1"
    assert decision.scores == {"e1": 0.0}


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        (cands(3, 1, 2), "e1"),
        (cands(0), "e0"),
        ([Candidate("a", in_flight=4, capacity=8), Candidate("b", in_flight=3)], "a"),
        ([Candidate("a", in_flight=1, waiting=5), Candidate("b", in_flight=3)], "b"),
        ([Candidate("a", in_flight=2, capacity=0), Candidate("b", in_flight=1)], "b"),
    ],
)
def test_least_load_picks_min(candidates: list[Candidate], expected: str) -> None:
    decision = LeastLoadPolicy().choose(REQ, candidates)
    assert decision.endpoint_id == expected
    assert decision.scores == {expected: min(load_ratio(c) for c in candidates)}


@pytest.mark.parametrize(
    ("loads", "calls", "expected_counts"),
    [
        ((1, 1, 1), 9, {"e0": 3, "e1": 3, "e2": 3}),
        ((0, 5, 0), 10, {"e0": 5, "e2": 5}),
        ((2, 2, 2, 2), 8, {"e0": 2, "e1": 2, "e2": 2, "e3": 2}),
    ],
)
def test_least_load_breaks_ties_fairly(
    loads: tuple[int, ...], calls: int, expected_counts: dict[str, int]
) -> None:
    policy = LeastLoadPolicy()
    candidates = cands(*loads)
    got = Counter(policy.choose(REQ, candidates).endpoint_id for _ in range(calls))
    assert dict(got) == expected_counts


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(
    ("loads", "never"),
    [
        ((1, 7), "e1"),
        ((9, 2), "e0"),
        ((0, 3, 5), "e2"),
        ((4, 4, 9, 4), "e2"),
    ],
)
def test_power_of_two_never_picks_the_max(seed: int, loads: tuple[int, ...], never: str) -> None:
    policy = PowerOfTwoPolicy(random.Random(seed))
    candidates = cands(*loads)
    for _ in range(50):
        decision = policy.choose(REQ, candidates)
        assert decision.endpoint_id != never
        assert decision.scores[decision.endpoint_id] == min(decision.scores.values())
        assert len(decision.scores) == 2  # the two sampled ones, nobody else
        assert set(decision.scores) <= {c.endpoint_id for c in candidates}


def test_power_of_two_is_replayable_and_spreads() -> None:
    candidates = cands(0, 0, 0, 0)
    first, second = PowerOfTwoPolicy(seed=7), PowerOfTwoPolicy(seed=7)
    a = [first.choose(REQ, candidates).endpoint_id for _ in range(20)]
    b = [second.choose(REQ, candidates).endpoint_id for _ in range(20)]
    assert a == b
    policy = PowerOfTwoPolicy(seed=1)
    got = Counter(policy.choose(REQ, candidates).endpoint_id for _ in range(400))
    assert set(got) == {"e0", "e1", "e2", "e3"}


def test_power_of_two_single_candidate() -> None:
    decision = PowerOfTwoPolicy(seed=0).choose(REQ, cands(3))
    assert decision.endpoint_id == "e0"
    assert decision.scores == {"e0": 3.0}


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_registry_builds_every_policy(name: str) -> None:
    policy = make_policy(name)
    assert policy.name == name
    candidates = cands(2, 0, 1)
    decision = policy.choose(RouteRequest(model="m", session_key="s"), candidates)
    assert decision.policy == name
    assert decision.endpoint_id in {c.endpoint_id for c in candidates}
    assert decision.endpoint_id in decision.scores
    assert set(decision.scores) <= {c.endpoint_id for c in candidates}
    policy.on_routed(REQ, decision.endpoint_id)
    policy.on_removed(decision.endpoint_id)


def test_registry_rejects_unknown_name() -> None:
    with pytest.raises(UnknownPolicyError, match="least_load"):
        make_policy("fastest")


@pytest.mark.parametrize(
    ("name", "options", "error"),
    [
        ("session", {"load_factor": 1.0}, ValueError),
        ("prefix", {"w_cache": -1.0}, ValueError),
        ("prefix", {"max_blocks_per_endpoint": 0}, ValueError),
        ("round_robin", {"bogus": 1}, TypeError),
    ],
)
def test_registry_rejects_bad_options(
    name: str, options: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        make_policy(name, **options)


def test_registry_names_are_the_config_literals() -> None:
    assert set(POLICY_NAMES) == {"round_robin", "least_load", "power_of_two", "session", "prefix"}
