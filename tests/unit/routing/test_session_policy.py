"""Session affinity with consistent hashing and bounded loads."""

from __future__ import annotations

import pytest

from inferplane.routing.policies import SessionPolicy
from inferplane.routing.types import Candidate, RouteRequest

KEYS = [f"user-{i}" for i in range(300)]


def idle(*ids: str) -> list[Candidate]:
    return [Candidate(i, capacity=4) for i in ids]


def req(key: str | None) -> RouteRequest:
    return RouteRequest(model="m", session_key=key)


@pytest.mark.parametrize("n", [2, 5, 16])
def test_session_sticks(n: int) -> None:
    policy = SessionPolicy()
    candidates = idle(*(f"e{i}" for i in range(n)))
    first = {k: policy.choose(req(k), candidates).endpoint_id for k in KEYS}
    for _ in range(3):
        assert {k: policy.choose(req(k), candidates).endpoint_id for k in KEYS} == first
    # consistent hashing spreads keys over every replica
    assert set(first.values()) == {c.endpoint_id for c in candidates}


def test_session_is_independent_of_candidate_order() -> None:
    a, b = SessionPolicy(), SessionPolicy()
    ids = [f"e{i}" for i in range(6)]
    for k in KEYS:
        assert (
            a.choose(req(k), idle(*ids)).endpoint_id
            == b.choose(req(k), idle(*reversed(ids))).endpoint_id
        )


@pytest.mark.parametrize(
    ("home_load", "others_load", "moves"),
    [
        (0, 0, False),
        (3, 3, False),  # everyone busy alike: stay
        (4, 0, True),  # bound = ceil(1.25 * 5/3 ...) is exceeded: move
        (9, 1, True),
    ],
)
def test_session_moves_when_bounded_load_exceeded(
    home_load: int, others_load: int, moves: bool
) -> None:
    policy = SessionPolicy(load_factor=1.25)
    ids = ["a", "b", "c"]
    home = policy.choose(req("alice"), idle(*ids)).endpoint_id
    loaded = [
        Candidate(i, in_flight=home_load if i == home else others_load, capacity=4) for i in ids
    ]
    decision = policy.choose(req("alice"), loaded)
    assert (decision.endpoint_id != home) is moves
    assert decision.scores[decision.endpoint_id] == min(decision.scores.values())
    assert set(decision.scores) <= set(ids)  # the walk stops at the first one under its bound
    assert (home in decision.scores) and (len(decision.scores) > 1) is moves
    if moves:  # the full home replica is ranked behind every replica under the bound
        assert decision.scores[home] >= len(ids)


def test_session_overflow_is_stable_along_the_ring() -> None:
    policy = SessionPolicy()
    ids = ["a", "b", "c", "d"]
    home = policy.choose(req("bob"), idle(*ids)).endpoint_id
    loaded = [Candidate(i, in_flight=8 if i == home else 0, capacity=4) for i in ids]
    second = {policy.choose(req("bob"), loaded).endpoint_id for _ in range(5)}
    assert len(second) == 1 and home not in second


@pytest.mark.parametrize("removed", ["e0", "e3", "e7"])
def test_session_remaps_minimally_on_removal(removed: str) -> None:
    policy = SessionPolicy()
    ids = [f"e{i}" for i in range(8)]
    before = {k: policy.choose(req(k), idle(*ids)).endpoint_id for k in KEYS}
    policy.on_removed(removed)
    remaining = [i for i in ids if i != removed]
    after = {k: policy.choose(req(k), idle(*remaining)).endpoint_id for k in KEYS}
    moved = {k for k in KEYS if before[k] != after[k]}
    assert moved == {k for k in KEYS if before[k] == removed}
    assert moved  # the removed replica did own some keys


def test_session_skips_unready_member_without_remapping_others() -> None:
    policy = SessionPolicy()
    ids = [f"e{i}" for i in range(5)]
    before = {k: policy.choose(req(k), idle(*ids)).endpoint_id for k in KEYS}
    after = {k: policy.choose(req(k), idle(*ids[1:])).endpoint_id for k in KEYS}
    assert {k for k in KEYS if before[k] != after[k]} == {k for k in KEYS if before[k] == "e0"}


@pytest.mark.parametrize(
    ("loads", "expected"),
    [((3, 0, 2), "e1"), ((0, 0, 0), "e0")],
)
def test_session_without_key_uses_least_load(loads: tuple[int, ...], expected: str) -> None:
    candidates = [Candidate(f"e{i}", in_flight=x) for i, x in enumerate(loads)]
    decision = SessionPolicy().choose(req(None), candidates)
    assert decision.endpoint_id == expected
    assert decision.policy == "session"
