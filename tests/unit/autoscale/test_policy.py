"""The scaling policy on tables of signal histories."""

from __future__ import annotations

import itertools
import math

import pytest

from inferplane.autoscale.policy import ScalingPolicy, Signals
from inferplane.config.scaling import AutoscaleConfig


def replay(cfg: AutoscaleConfig, loads: list[tuple[float, int]], *, start: int, until: float, held_when_zero: bool = True,
           **extra: object) -> list[tuple[float, int, str]]:
    """Feed a piecewise-constant load (time, load) every interval; return (time, desired, reason) changes.

    Ready replicas follow the desired count at once (the policy only sees counts)."""
    policy = ScalingPolicy(cfg)
    desired, changes = start, []
    t = 0.0
    while t <= until:
        load = next(v for at, v in reversed(loads) if at <= t)
        held = load if desired == 0 and held_when_zero else 0
        s = Signals(now=t, ready=desired, starting=0, in_flight=load - held, held=held, **extra)  # type: ignore[arg-type]
        d = policy.decide(s, desired)
        if d.desired != desired:
            changes.append((t, d.desired, d.reason))
            desired = d.desired
        t = round(t + cfg.interval_s, 6)
    return changes


CFG = AutoscaleConfig(min_replicas=1, max_replicas=6, target_in_flight_per_replica=3, scale_down_delay_s=60)


def test_scale_up_is_immediate_and_several_at_once() -> None:
    assert replay(CFG, [(0, 1), (10, 13)], start=1, until=20) == [(10, 5, "load")]


def test_scale_up_is_capped_by_max_replicas() -> None:
    assert replay(CFG, [(0, 100)], start=1, until=5) == [(0, 6, "load")]


@pytest.mark.parametrize(("low", "high", "period_s"), [(2, 4, 5), (3, 6, 2), (5, 7, 10), (0, 4, 3)])
def test_flapping_load_does_not_flap_replicas(low: int, high: int, period_s: float) -> None:
    """A load that swings between two levels for 10 minutes: the count rises to fit the high
    level within the first swing and then never moves again."""
    loads = [(t, high if (t // period_s) % 2 else low) for t in range(0, 600)]
    changes = replay(CFG, [(float(t), v) for t, v in loads], start=1, until=600)
    assert all(t < 2 * period_s for t, _, _ in changes), changes
    assert [n for _, n, _ in changes] == sorted(n for _, n, _ in changes), changes


def test_scale_down_waits_for_the_delay_then_goes_one_at_a_time() -> None:
    changes = replay(CFG, [(0, 18), (100, 1)], start=6, until=400)
    assert changes[0][0] >= 160, "scaled down before the load was low for scale_down_delay_s"
    assert [c[1] for c in changes] == [5, 4, 3, 2, 1]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(changes)]
    assert min(gaps) >= 10


def test_load_just_below_a_boundary_keeps_the_larger_count() -> None:
    # 8 in flight would fit ceil(8/3)=3 replicas, but not 3 at 70 % of target: stay at 4
    assert replay(CFG, [(0, 8)], start=4, until=300) == []


def test_scale_to_zero_after_idle_and_back_on_the_first_held_request() -> None:
    cfg = AutoscaleConfig(min_replicas=0, max_replicas=3, target_in_flight_per_replica=2, scale_down_delay_s=30,
                          scale_to_zero_after_s=120)
    changes = replay(cfg, [(0, 1), (10, 0), (300, 1), (310, 0)], start=1, until=320)
    assert changes[0] == (129, 0, "idle")  # last reading with load: t=9
    assert changes[1] == (300, 1, "held requests")


def test_min_replicas_zero_keeps_one_replica_while_there_is_load() -> None:
    cfg = AutoscaleConfig(min_replicas=0, max_replicas=3, scale_to_zero_after_s=60, scale_down_delay_s=10)
    assert replay(cfg, [(0, 1)], start=1, until=600) == []


def test_scale_up_delay_needs_sustained_load() -> None:
    cfg = AutoscaleConfig(min_replicas=1, max_replicas=4, target_in_flight_per_replica=1, scale_up_delay_s=5)
    # a 3-second spike does nothing; a sustained rise adds replicas once it lasted 5 s
    changes = replay(cfg, [(0, 1), (10, 4), (13, 1), (30, 3)], start=1, until=40)
    assert changes == [(35, 3, "load")]


def test_ttft_above_the_slo_adds_one_replica_unless_one_is_starting() -> None:
    cfg = AutoscaleConfig(min_replicas=1, max_replicas=4, target_in_flight_per_replica=10, ttft_slo_s=0.5)
    p = ScalingPolicy(cfg)
    slow = dict(in_flight=3, ttft_p95_s=2.0)
    assert p.decide(Signals(now=0, ready=1, starting=0, **slow), 1).desired == 2  # type: ignore[arg-type]
    d = p.decide(Signals(now=1, ready=1, starting=1, **slow), 2)  # type: ignore[arg-type]
    assert d.desired == 2 and d.direction == "none"
    fast = p.decide(Signals(now=2, ready=2, starting=0, in_flight=3, ttft_p95_s=0.1), 2)
    assert fast.desired == 2


def test_full_kv_cache_with_a_waiting_queue_adds_a_replica() -> None:
    p = ScalingPolicy(AutoscaleConfig(max_replicas=4, target_in_flight_per_replica=10))
    s = Signals(now=0, ready=1, starting=0, in_flight=2, runtime_running=2, runtime_waiting=3, kv_cache_usage=0.97)
    d = p.decide(s, 1)
    assert (d.desired, d.reason) == (2, "kv cache full")
    roomy = Signals(now=1, ready=2, starting=0, in_flight=2, runtime_running=2, runtime_waiting=0, kv_cache_usage=0.5)
    assert p.decide(roomy, 2).desired == 2


def test_runtime_reported_load_counts_when_it_exceeds_the_gateways_own() -> None:
    p = ScalingPolicy(AutoscaleConfig(max_replicas=8, target_in_flight_per_replica=2))
    s = Signals(now=0, ready=1, starting=0, in_flight=1, runtime_running=4, runtime_waiting=6)
    assert p.decide(s, 1).desired == math.ceil(10 / 2)


def test_no_scale_to_zero_while_a_replica_is_still_starting() -> None:
    cfg = AutoscaleConfig(min_replicas=0, max_replicas=2, scale_to_zero_after_s=2)
    p = ScalingPolicy(cfg)
    for t in range(10):
        assert p.decide(Signals(now=float(t), ready=0, starting=1, in_flight=0), 1).desired == 1
    assert p.decide(Signals(now=10.0, ready=1, starting=0, in_flight=0), 1).desired == 0
