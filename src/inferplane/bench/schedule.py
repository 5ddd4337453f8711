"""Arrival schedules for open-loop load: pure functions returning offsets in seconds from t0.

- ``poisson``: exponential gaps with mean 1/rate (gamma with shape 1).
- ``gamma``: gamma gaps with shape = ``burstiness`` and mean 1/rate (vLLM's convention:
  burstiness < 1 is burstier than Poisson, > 1 more regular).
- ``constant``: gaps of exactly 1/rate.
- ``burst``: everything at t0.
- stages (ramp): piecewise-constant rates, each for a duration.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

__all__ = ["Arrival", "arrival_offsets", "parse_stages", "stage_offsets"]

Arrival = Literal["poisson", "constant", "gamma", "burst"]


def _gap(rng: random.Random, rate: float, arrival: Arrival, burstiness: float) -> float:
    if arrival == "constant":
        return 1.0 / rate
    shape = 1.0 if arrival == "poisson" else burstiness
    return rng.gammavariate(shape, 1.0 / (rate * shape))


def arrival_offsets(
    n: int, rate: float, arrival: Arrival = "poisson", *, burstiness: float = 1.0, seed: int = 0
) -> list[float]:
    """``n`` send offsets (seconds, non-decreasing, first at 0) for a target ``rate`` in req/s."""
    if arrival == "burst":
        return [0.0] * n
    if rate <= 0:
        raise ValueError("rate must be > 0 req/s")
    if arrival == "gamma" and burstiness <= 0:
        raise ValueError("burstiness must be > 0")
    rng = random.Random(seed)
    out: list[float] = []
    t = 0.0
    for _ in range(n):
        out.append(t)
        t += _gap(rng, rate, arrival, burstiness)
    return out


def stage_offsets(
    stages: Sequence[tuple[float, float]],
    arrival: Arrival = "poisson",
    *,
    burstiness: float = 1.0,
    seed: int = 0,
) -> list[float]:
    """Offsets for consecutive (rate req/s, duration s) stages; arrivals past a stage's end move on."""
    rng = random.Random(seed)
    out: list[float] = []
    start = 0.0
    for rate, duration in stages:
        if rate <= 0 or duration <= 0:
            raise ValueError("each stage needs rate > 0 and duration > 0")
        t = start
        while True:
            t += _gap(rng, rate, arrival, burstiness) if arrival != "burst" else 0.0
            if t >= start + duration or arrival == "burst":
                break
            out.append(t)
        start += duration
    return out


def parse_stages(spec: str) -> list[tuple[float, float]]:
    """``"2:10,5:10,10:20"`` -> [(2.0, 10.0), (5.0, 10.0), (10.0, 20.0)] (rate:duration_s)."""
    stages = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        rate, sep, duration = item.partition(":")
        if not sep:
            raise ValueError(f"bad stage {item!r}: expected RATE:DURATION_S, e.g. 5:30")
        stages.append((float(rate), float(duration)))
    if not stages:
        raise ValueError("no stages given")
    return stages
