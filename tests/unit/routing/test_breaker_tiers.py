from __future__ import annotations

import pytest

from inferplane.routing.breaker import Breaker, BreakerState
from inferplane.routing.tiers import select_tier
from inferplane.routing.types import Candidate


def test_breaker_opens_after_consecutive_failures_then_half_opens_once() -> None:
    b = Breaker(failure_threshold=3, open_s=10)
    for t in (0, 1):
        b.record_failure(t)
        assert b.state is BreakerState.CLOSED and b.allow(t)
    b.record_failure(2)
    assert b.state is BreakerState.OPEN
    assert not b.allow(5) and not b.would_allow(11.9)
    assert b.would_allow(12) and b.allow(12)  # the trial request
    assert b.state is BreakerState.HALF_OPEN
    assert not b.allow(12.1)  # only one trial at a time
    b.record_success()
    assert b.state is BreakerState.CLOSED and b.allow(13)


def test_a_failed_trial_reopens_for_the_full_period() -> None:
    b = Breaker(failure_threshold=1, open_s=5)
    b.record_failure(0)
    assert b.allow(5)
    b.record_failure(5)
    assert b.state is BreakerState.OPEN and not b.allow(9) and b.allow(10)


def test_a_success_resets_the_count() -> None:
    b = Breaker(failure_threshold=2, open_s=5)
    b.record_failure(0)
    b.record_success()
    b.record_failure(1)
    assert b.state is BreakerState.CLOSED


def C(eid: str, *, prio: int = 0, region: str | None = None, in_flight: int = 0, cap: int = 2) -> Candidate:
    return Candidate(endpoint_id=eid, in_flight=in_flight, capacity=cap, region=region, priority=prio)


@pytest.mark.parametrize(("cands", "region", "expected"), [
    ([C("a"), C("b")], None, ["a", "b"]),
    ([C("a", prio=1), C("b", prio=0)], None, ["b"]),
    # the preferred tier is saturated in full: spill to the next one
    ([C("a", in_flight=2), C("b", prio=1)], None, ["b"]),
    # one replica of the preferred tier still has room: stay
    ([C("a", in_flight=2), C("a2"), C("b", prio=1)], None, ["a", "a2"]),
    # every tier saturated: the preferred one queues
    ([C("a", in_flight=4), C("b", prio=1, in_flight=5)], None, ["a"]),
    # region: same priority, the preferred region first
    ([C("eu", region="eu"), C("us", region="us")], "us", ["us"]),
    ([C("eu", region="eu"), C("us", region="us", in_flight=2)], "us", ["eu"]),
    # priority beats region
    ([C("us", region="us", prio=1), C("eu", region="eu", prio=0)], "us", ["eu"]),
])
def test_select_tier(cands: list[Candidate], region: str | None, expected: list[str]) -> None:
    assert [c.endpoint_id for c in select_tier(cands, preferred_region=region, saturation=1.0)] == expected
