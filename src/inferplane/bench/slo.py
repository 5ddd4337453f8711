"""Service-level objectives: per-request thresholds (for goodput) and run-level percentiles.

``--slo ttft=200ms,tpot_p99=50ms,e2e=10s``: each key is a metric (``ttft``, ``tpot``,
``e2e``) with an optional ``_pNN`` suffix (default p99). A request is *good* when it
succeeded and every threshold holds for it (TPOT is not checked when OSL < 2). A run
*meets* the SLOs when each metric's chosen percentile, failures counted as +inf, is within
its threshold. Values take ``ms``, ``s`` or ``us`` suffixes; a bare number means ms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SloTarget", "parse_duration_s", "parse_slos"]

_METRICS = ("ttft", "tpot", "e2e")
_KEY = re.compile(r"^(ttft|tpot|e2e)(?:_p(\d{1,2}(?:\.\d+)?))?$")


@dataclass(frozen=True, slots=True)
class SloTarget:
    """One objective: ``metric`` at ``percentile`` must be <= ``threshold_s``."""

    metric: str
    threshold_s: float
    percentile: float = 99.0

    def label(self) -> str:
        """E.g. ``ttft_p99<=200ms``."""
        return f"{self.metric}_p{self.percentile:g}<={self.threshold_s * 1e3:g}ms"


def parse_duration_s(text: str) -> float:
    """``"200ms"`` -> 0.2, ``"1.5s"`` -> 1.5, ``"300us"`` -> 0.0003, ``"50"`` -> 0.05 (ms)."""
    t = text.strip().lower()
    for suffix, scale in (("ms", 1e-3), ("us", 1e-6), ("s", 1.0)):
        if t.endswith(suffix):
            return float(t[: -len(suffix)]) * scale
    return float(t) * 1e-3


def parse_slos(spec: str) -> tuple[SloTarget, ...]:
    """Parse ``"ttft=200ms,tpot_p90=40ms"``; raises ``ValueError`` naming the bad item."""
    targets: list[SloTarget] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, value = item.partition("=")
        match = _KEY.match(key.strip().lower())
        if not sep or match is None:
            raise ValueError(
                f"bad SLO {item!r}: expected METRIC[_pNN]=VALUE with METRIC in {_METRICS}, e.g. ttft_p99=200ms"
            )
        try:
            threshold = parse_duration_s(value)
        except ValueError as exc:
            raise ValueError(f"bad SLO value in {item!r}: use e.g. 200ms or 1.5s") from exc
        pct = float(match.group(2)) if match.group(2) else 99.0
        targets.append(SloTarget(match.group(1), threshold, pct))
    return tuple(targets)
