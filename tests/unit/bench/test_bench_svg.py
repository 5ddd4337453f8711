"""The report's charts: a log axis when an outlier would squash the curve, legends off the curves."""

from __future__ import annotations

import re

from inferplane.bench.svg import _H, _T, Series, cdf_points, line_chart


def _polyline_xs(svg: str) -> list[float]:
    pts = re.search(r'<polyline[^>]*points="([^"]+)"', svg).group(1)
    return [float(p.split(",")[0]) for p in pts.split()]


def test_an_outlier_switches_the_cdf_to_a_log_axis_so_the_bulk_stays_readable() -> None:
    gaps_ms = [10.0 + i * 0.1 for i in range(99)] + [5000.0]  # 99 chunks ~10 ms apart, one 5 s stall
    xs, ys = cdf_points(gaps_ms)
    svg = line_chart([Series("run", xs, ys)], title="ICL CDF", x_label="ICL (ms)", y_label="fraction",
                     log_x=None)
    assert "ICL (ms), log scale" in svg
    px = _polyline_xs(svg)
    # the 99 ordinary gaps spread over a visible width instead of one pixel column
    assert px[98] - px[0] > 10
    linear = line_chart([Series("run", xs, ys)], title="ICL CDF", x_label="ICL (ms)", y_label="fraction")
    assert "log scale" not in linear and _polyline_xs(linear)[98] - _polyline_xs(linear)[0] < 2


def test_legend_entries_sit_below_the_plot_area() -> None:
    series = [Series(f"run {i}", [1.0, 2.0], [0.5, 1.0]) for i in range(4)]
    svg = line_chart(series, title="t", x_label="x", y_label="y")
    legend_ys = [float(y) for y in re.findall(r'<text x="[\d.]+" y="([\d.]+)" font-size="11">run', svg)]
    assert len(legend_ys) == 4 and all(y > _H - 20 > _T for y in legend_ys)
    assert f'height="{_H + 2 * 16}"' in svg  # two legend rows added under the chart


def test_a_sliver_of_a_last_second_does_not_become_a_huge_rate() -> None:
    from inferplane.bench.records import RequestRecord
    from inferplane.bench.timeseries import build_series

    ns = 1_000_000_000
    recs = []
    for i in range(4):  # 10 tokens/s for 3 s; the last request ends 5 ms into the 4th second
        end = 3 * ns + 5_000_000 if i == 3 else (i + 1) * ns
        recs.append(RequestRecord(i, True, True, 0, i * ns, end, t_first_ns=i * ns + 1, t_last_ns=end - 1,
                                  chunk_times_ns=(end - 1,), osl=10))
    series = build_series(recs)
    assert max(series.output_tokens) < 25, series.output_tokens  # not 10 tokens / 0.005 s = 2,000 tok/s
