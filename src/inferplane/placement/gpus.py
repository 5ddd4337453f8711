"""Granting GPUs to local replicas: pure bookkeeping over the GPU ids this host has."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["GpuShortage", "assign_gpus"]


class GpuShortage(ValueError):
    """The replicas ask for more GPUs than the host has; the message says how many."""


def assign_gpus(available: Sequence[int], requests: Sequence[tuple[str, int]]) -> list[tuple[int, ...]]:
    """Disjoint GPU sets, in order, one per ``(replica name, GPUs wanted)`` request.

    A request for 0 GPUs gets ``()``. Raises GpuShortage when the total exceeds ``available``.
    """
    want = sum(n for _, n in requests)
    if want > len(available):
        names = ", ".join(f"{name} x{n}" for name, n in requests if n)
        raise GpuShortage(f"the replicas need {want} GPU(s) ({names}) but this host has {len(available)}")
    out, i = [], 0
    for _, n in requests:
        out.append(tuple(available[i : i + n]))
        i += n
    return out
