"""How many CPU threads a local replica should get."""

from __future__ import annotations

import os

__all__ = ["free_cores", "threads_per_replica"]


def free_cores() -> int:
    """Cores this process may use minus the ones already busy (1-minute load average)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, round(usable - busy))


def threads_per_replica(replicas: int, requested: int | None = None) -> int:
    """``requested`` if given, else the free cores split evenly across ``replicas`` (>= 1)."""
    if requested:
        return requested
    return max(1, free_cores() // max(1, replicas))
