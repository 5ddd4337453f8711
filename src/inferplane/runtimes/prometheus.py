"""A small parser for the Prometheus text exposition format (what runtimes serve on /metrics)."""

from __future__ import annotations

import math

__all__ = ["parse_prometheus"]


def parse_prometheus(text: str) -> dict[str, float]:
    """Sample name -> value, summed over label sets.

    ``vllm:num_requests_running{model_name="m"} 2`` and the same metric for another
    model add up; histogram buckets keep their ``_bucket`` names (and are summed over
    ``le``, which is meaningless - use ``_sum``/``_count``). NaN samples are skipped.
    """
    out: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        brace = line.find("{")
        if brace >= 0:
            name = line[:brace]
            close = line.rfind("}")
            rest = line[close + 1 :].split()
        else:
            parts = line.split()
            name, rest = parts[0], parts[1:]
        if not rest:
            continue
        try:
            value = float(rest[0])
        except ValueError:
            continue
        if math.isnan(value):
            continue
        out[name] = out.get(name, 0.0) + value
    return out
