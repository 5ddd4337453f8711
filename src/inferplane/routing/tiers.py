"""Tiers: keep traffic in the preferred tier, spill over when it is unhealthy or saturated.

Pure. A candidate's tier is ``(priority, region_rank)``: lower priority first, then the
preferred region before others. The chosen tier is the best one with an unsaturated
candidate (in flight below ``saturation`` x capacity); when every tier is saturated, the
best tier (queueing where it is preferred beats spilling everywhere).
"""

from __future__ import annotations

from collections.abc import Sequence

from inferplane.routing.types import Candidate

__all__ = ["select_tier", "tier_of"]


def tier_of(c: Candidate, preferred_region: str | None) -> tuple[int, int]:
    region_rank = 0 if preferred_region is None or c.region == preferred_region else 1
    return (c.priority, region_rank)


def _saturated(c: Candidate, saturation: float) -> bool:
    return max(c.in_flight, c.running + c.waiting) >= saturation * max(c.capacity, 1)


def select_tier(candidates: Sequence[Candidate], *, preferred_region: str | None = None,
                saturation: float = 1.0) -> list[Candidate]:
    """The candidates of the tier to route in (non-empty if ``candidates`` is)."""
    if not candidates:
        return []
    tiers: dict[tuple[int, int], list[Candidate]] = {}
    for c in candidates:
        tiers.setdefault(tier_of(c, preferred_region), []).append(c)
    ordered = [tiers[k] for k in sorted(tiers)]
    if len(ordered) == 1:
        return ordered[0]
    for tier in ordered:
        if any(not _saturated(c, saturation) for c in tier):
            return tier
    return ordered[0]
