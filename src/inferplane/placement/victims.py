"""Which replicas to take out of service when a deployment shrinks: a pure choice.

The victim is the replica whose loss costs least, in this order:
1. one that is not serving yet (starting: nothing in flight, no cache);
2. fewest requests in flight (they must finish before it stops);
3. fewest pinned sessions (recent sessions last served there: they move to another
   replica and lose their cached conversation);
4. least cached-prefix value (blocks the prefix index remembers for it: traffic that
   would have hit that cache must recompute it elsewhere);
5. the newest (highest sequence number), so long-lived replicas keep their warm caches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["VictimFacts", "choose_victims"]


@dataclass(frozen=True, slots=True)
class VictimFacts:
    endpoint_id: str
    ready: bool
    in_flight: int
    cached_blocks: int
    seq: int
    """Order of creation (higher = newer)."""
    pinned_sessions: int = 0


def choose_victims(replicas: Sequence[VictimFacts], n: int) -> list[str]:
    """The ids of the ``n`` replicas (or all, if fewer) that are cheapest to lose, cheapest first."""
    ranked = sorted(replicas, key=lambda r: (r.ready, r.in_flight, r.pinned_sessions, r.cached_blocks, -r.seq))
    return [r.endpoint_id for r in ranked[: max(0, n)]]
