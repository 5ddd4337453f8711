"""Distribution statistics with one stated convention.

Percentiles use linear interpolation between closest ranks (Hyndman & Fan type 7, the
default of NumPy's ``percentile`` and of vLLM's benchmark): for sorted ``x`` of length
``n``, position ``h = (n - 1) * q / 100`` and the result is
``x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])``.
``std`` is the sample standard deviation (divisor ``n - 1``; 0 for ``n = 1``).
``+inf`` values (failed requests in the error-adjusted view) sort last; any interpolation
touching one yields ``+inf``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

__all__ = ["INTERPOLATION", "PERCENTILES", "Distribution", "json_num", "percentile", "summarize"]

INTERPOLATION = "linear between closest ranks (Hyndman-Fan type 7, numpy default)"
PERCENTILES: tuple[int, ...] = (50, 90, 95, 99)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of already sorted values; NaN when empty."""
    n = len(sorted_values)
    if n == 0:
        return math.nan
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    h = (n - 1) * q / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    a, b = sorted_values[lo], sorted_values[hi]
    frac = h - lo
    if frac == 0.0 or a == b:
        return a
    if math.isinf(a) or math.isinf(b):
        return math.inf
    return a + frac * (b - a)


@dataclass(frozen=True, slots=True)
class Distribution:
    """Summary of one metric over requests (or pooled chunk gaps). Units are the caller's."""

    n: int
    mean: float
    std: float
    min: float
    max: float
    p50: float
    p90: float
    p95: float
    p99: float

    def to_dict(self) -> dict[str, float | int | str | None]:
        """JSON-ready (see :func:`json_num`)."""
        return {k: json_num(v) for k, v in asdict(self).items()}

    def scaled(self, factor: float) -> Distribution:
        """Same distribution in other units (e.g. seconds to milliseconds)."""
        return Distribution(
            n=self.n,
            **{
                k: getattr(self, k) * factor
                for k in ("mean", "std", "min", "max", "p50", "p90", "p95", "p99")
            },
        )


def summarize(values: Iterable[float]) -> Distribution:
    """Distribution of ``values``; all fields NaN (n=0) when there are none."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        nan = math.nan
        return Distribution(0, nan, nan, nan, nan, nan, nan, nan, nan)
    if math.isinf(xs[-1]):
        mean = math.inf
        std = math.nan if n > 1 else 0.0
    else:
        mean = math.fsum(xs) / n
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    p = [percentile(xs, q) for q in PERCENTILES]
    return Distribution(n, mean, std, xs[0], xs[-1], p[0], p[1], p[2], p[3])


def json_num(value: float | int) -> float | int | str | None:
    """JSON-safe number: NaN becomes ``None``, infinities the strings ``"inf"``/``"-inf"``."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value
