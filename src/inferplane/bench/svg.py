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


LOG_SPREAD = 50.0
"""With ``log_x=None``, the x axis is logarithmic when its largest value is this many times its
smallest positive one (a few slow outliers would otherwise squash everything else into one column)."""
_LEGEND_COLS, _LEGEND_ROW = 3, 16


def _log_ticks(lo: float, hi: float) -> list[float]:
    """1, 2, 5 x 10^k within [lo, hi]."""
    out = []
    for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        out += [m * 10.0**k for m in (1, 2, 5) if lo <= m * 10.0**k <= hi]
    return out or [lo, hi]


def line_chart(
    series: Sequence[Series], *, title: str, x_label: str, y_label: str, markers: bool = False,
    log_x: bool | None = False,
) -> str:
    """An SVG ``<svg>`` element with axes, ticks, one polyline per series and, under the plot
    (never over the curves), a legend. ``log_x``: True, False, or None = when the values span
    more than :data:`LOG_SPREAD` (the axis label then says "log scale")."""
    pts = [
        [(x, y) for x, y in zip(s.xs, s.ys, strict=False) if math.isfinite(x) and math.isfinite(y)]
        for s in series
    ]
    allx = [x for p in pts for x, _ in p]
    ally = [y for p in pts for _, y in p]
    positive = [x for x in allx if x > 0]
    if log_x is None:
        log_x = bool(positive) and max(positive) / min(positive) > LOG_SPREAD
    if log_x:
        pts = [[(x, y) for x, y in p if x > 0] for p in pts]
        allx = positive
        x_label = f"{x_label}, log scale"
    rows = math.ceil(len(series) / _LEGEND_COLS) if len(series) > 1 or (series and series[0].label) else 0
    height = _H + rows * _LEGEND_ROW
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {height}" width="{_W}" height="{height}" '
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
        x0, x1 = (x0 / 2, x1 * 2) if log_x else (x0 - 0.5, x1 + 0.5)
    if y1 == y0:
        y1 = y0 + 1.0
    pw, ph = _W - _L - _R, _H - _T - _B

    if log_x:
        lx0, lx1 = math.log10(x0), math.log10(x1)

        def sx(x: float) -> float:
            return _L + (math.log10(x) - lx0) / (lx1 - lx0) * pw
    else:

        def sx(x: float) -> float:
            return _L + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return _T + ph - (y - y0) / (y1 - y0) * ph

    out.append(f'<rect x="{_L}" y="{_T}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for t in _log_ticks(x0, x1) if log_x else _ticks(x0, x1):
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
        if rows:
            lx = _L + (k % _LEGEND_COLS) * (pw // _LEGEND_COLS)
            ly = _H + (k // _LEGEND_COLS) * _LEGEND_ROW + 4
            out.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{color}"/>')
            out.append(f'<text x="{lx + 14}" y="{ly}" font-size="11">{escape(s.label[:28])}</text>')
    out.append("</svg>")
    return "".join(out)
