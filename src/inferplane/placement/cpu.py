"""How many CPU threads a local replica should get.

The default never depends on the machine's load at the moment ``serve`` starts (a busy
minute would otherwise bake 1 thread into a replica for its whole life, and into the
deployment files ``choose`` writes): it is the cores this process may use, split evenly
across the local replicas.
"""

from __future__ import annotations

import os

__all__ = ["threads_per_replica", "usable_cores"]


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; all cores where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_replica(replicas: int, requested: int | None = None, *, cores: int | None = None) -> int:
    """``requested`` if given, else ``cores`` (default: :func:`usable_cores`) split evenly across ``replicas``, >= 1."""
    if requested:
        return requested
    return max(1, (cores or usable_cores()) // max(1, replicas))
