"""Minimal inline-SVG line charts for the HTML report (no JavaScript, no external assets)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Series", "cdf_points", "line_chart"]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_W, _H = 560, 300
_L, _R, _T, _B = 64, 16, 28, 44


@dataclass(frozen=True, slots=True)
class Series:
    """One line: ``label`` and matching x/y values (non-finite points are dropped)."""

    label: str
    xs: Sequence[float]
    ys: Sequence[float]


def cdf_points(values: Sequence[float], max_points: int = 400) -> tuple[list[float], list[float]]:
    """Empirical CDF (x = value, y = fraction <= x), thinned to at most ``max_points``."""
    xs = sorted(v for v in values if math.isfinite(v))
    n = len(xs)
    if n == 0:
        return [], []
    step = max(1, n // max_points)
    idx = list(range(0, n, step))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return [xs[i] for i in idx], [(i + 1) / n for i in idx]


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def line_chart(
    series: Sequence[Series], *, title: str, x_label: str, y_label: str, markers: bool = False
) -> str:
    """An SVG ``<svg>`` element with axes, ticks, a legend and one polyline per series."""
    pts = [
        [(x, y) for x, y in zip(s.xs, s.ys, strict=False) if math.isfinite(x) and math.isfinite(y)]
        for s in series
    ]
    allx = [x for p in pts for x, _ in p]
    ally = [y for p in pts for _, y in p]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" '
        f'role="img" aria-label="{escape(title)}" class="chart">',
        f'<text x="{_W / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    if not allx:
        out.append(
            f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle" fill="#888">no data</text></svg>'
        )
        return "".join(out)
    x0, x1 = min(allx), max(allx)
    y0, y1 = min(0.0, min(ally)), max(ally)
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 == y0:
        y1 = y0 + 1.0
    pw, ph = _W - _L - _R, _H - _T - _B

    def sx(x: float) -> float:
        return _L + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return _T + ph - (y - y0) / (y1 - y0) * ph

    out.append(f'<rect x="{_L}" y="{_T}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for t in _ticks(x0, x1):
        out.append(
            f'<line x1="{sx(t):.1f}" y1="{_T + ph}" x2="{sx(t):.1f}" y2="{_T + ph + 4}" stroke="#999"/>'
        )
        out.append(
            f'<text x="{sx(t):.1f}" y="{_T + ph + 16}" text-anchor="middle" font-size="11">{_fmt(t)}</text>'
        )
    for t in _ticks(y0, y1):
        out.append(
            f'<line x1="{_L}" y1="{sy(t):.1f}" x2="{_L + pw}" y2="{sy(t):.1f}" stroke="#eee"/>'
        )
        out.append(
            f'<text x="{_L - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" font-size="11">{_fmt(t)}</text>'
        )
    out.append(
        f'<text x="{_L + pw / 2}" y="{_H - 6}" text-anchor="middle" font-size="12">{escape(x_label)}</text>'
    )
    out.append(
        f'<text x="14" y="{_T + ph / 2}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 14 {_T + ph / 2})">{escape(y_label)}</text>'
    )
    for k, (s, p) in enumerate(zip(series, pts, strict=True)):
        color = _COLORS[k % len(_COLORS)]
        if p:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in p)
            out.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{path}"/>'
            )
            if markers:
                out.extend(
                    f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>'
                    for x, y in p
                )
        ly = _T + 14 + 14 * k
        out.append(
            f'<rect x="{_L + pw - 150}" y="{ly - 9}" width="10" height="10" fill="{color}"/>'
        )
        out.append(
            f'<text x="{_L + pw - 136}" y="{ly}" font-size="11">{escape(s.label[:24])}</text>'
        )
    out.append("</svg>")
    return "".join(out)
