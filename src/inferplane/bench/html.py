"""Self-contained HTML report: tables plus inline SVG plots, no scripts or external assets."""

from __future__ import annotations

import math
from html import escape

import orjson

from inferplane.bench.analysis import RunOutcome
from inferplane.bench.metrics import request_metrics
from inferplane.bench.report import BenchReport
from inferplane.bench.stats import Distribution
from inferplane.bench.svg import Series, cdf_points, line_chart

__all__ = ["render_html"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:8px 12px;margin:6px 0}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{border:1px solid #eee;background:#fff}
pre{background:#f7f7f7;padding:8px;font-size:12px;overflow:auto}
dt{font-weight:bold}dd{margin:0 0 6px 16px}
"""

_DIST_ROWS = (
    ("TTFT (ms)", "ttft", 1e3), ("TTFT_sched (ms)", "ttft_sched", 1e3), ("TPOT (ms)", "tpot", 1e3),
    ("ICL (ms)", "icl", 1e3), ("E2E (ms)", "e2e", 1e3), ("E2E_sched (ms)", "e2e_sched", 1e3),
    ("NTPOT (ms)", "ntpot", 1e3), ("TTFT error-adjusted (ms)", "ttft_error_adjusted", 1e3),
    ("E2E error-adjusted (ms)", "e2e_error_adjusted", 1e3), ("Schedule lag (ms)", "schedule_lag", 1e3),
    ("Tokens per chunk", "tokens_per_chunk", 1.0), ("ISL (tokens)", "isl", 1.0), ("OSL (tokens)", "osl", 1.0),
)  # fmt: skip


def _f(v: float | int | None, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _summary_table(runs: tuple[RunOutcome, ...]) -> str:
    rows = []
    for r in runs:
        m = r.metrics
        rows.append([
            r.label, f"{m.n_ok}/{m.n_requests}", _f(m.duration_s), _f(m.request_throughput), _f(m.output_throughput, 1),
            _f(m.total_token_throughput, 1), _f(m.goodput_rps), _f(m.ttft.p50 * 1e3), _f(m.ttft.p99 * 1e3),
            _f(m.tpot.p50 * 1e3), _f(m.tpot.p99 * 1e3), _f(m.icl.p50 * 1e3), _f(m.e2e.p50 * 1e3), _f(m.e2e.p99 * 1e3),
            _f(m.concurrency_mean), str(m.concurrency_peak), _f(max(r.client_cpu_pct, default=0.0), 0),
        ])  # fmt: skip
    header = ["run", "ok/sent", "duration s", "req/s", "out tok/s", "total tok/s", "goodput req/s",
              "TTFT p50 ms", "TTFT p99 ms", "TPOT p50 ms", "TPOT p99 ms", "ICL p50 ms", "E2E p50 ms",
              "E2E p99 ms", "conc. mean", "conc. peak", "client CPU %"]  # fmt: skip
    return _table(header, rows)


def _dist_table(run: RunOutcome) -> str:
    rows = []
    for name, attr, scale in _DIST_ROWS:
        d: Distribution = getattr(run.metrics, attr)
        d = d.scaled(scale)
        rows.append(
            [
                name,
                str(d.n),
                _f(d.mean),
                _f(d.std),
                _f(d.min),
                _f(d.p50),
                _f(d.p90),
                _f(d.p95),
                _f(d.p99),
                _f(d.max),
            ]
        )
    return _table(["metric", "n", "mean", "std", "min", "p50", "p90", "p95", "p99", "max"], rows)


def _cdfs(runs: tuple[RunOutcome, ...]) -> str:
    charts = []
    per_run = [(r.label, [request_metrics(rec) for rec in r.records if rec.ok]) for r in runs[:8]]
    for title, get in (
        ("TTFT", lambda m: [m.ttft_s] if m.ttft_s is not None else []),
        ("TPOT", lambda m: [m.tpot_s] if m.tpot_s is not None else []),
        ("ICL", lambda m: list(m.icl_s)),
        ("E2E", lambda m: [m.e2e_s]),
    ):
        series = []
        for label, ms in per_run:
            xs, ys = cdf_points([v * 1e3 for m in ms for v in get(m)])
            series.append(Series(label, xs, ys))
        charts.append(
            line_chart(
                series,
                title=f"{title} CDF",
                x_label=f"{title} (ms)",
                y_label="fraction of requests",
                log_x=None,  # one slow outlier must not squash the rest into one column
            )
        )
    return '<div class="charts">' + "".join(charts) + "</div>"


def _timeseries(run: RunOutcome) -> str:
    s = run.metrics.series
    xs = [i + 0.5 for i in range(len(s.output_tokens))]
    tok = line_chart(
        [Series("output tok/s", xs, s.output_tokens)],
        title=f"Output tokens/s — {run.label}",
        x_label="time (s)",
        y_label="tokens/s",
    )
    conc = line_chart(
        [Series("in flight", xs, s.concurrency)],
        title=f"Concurrency — {run.label}",
        x_label="time (s)",
        y_label="requests in flight",
    )
    return f'<div class="charts">{tok}{conc}</div>'


def _sweep(report: BenchReport) -> str:
    runs = report.runs
    assert report.sweep is not None
    x = list(report.sweep.values[: len(runs)])
    kind = report.sweep.kind
    thr = line_chart(
        [Series("output tok/s", x, [r.metrics.output_throughput for r in runs])],
        title="Throughput vs load",
        x_label=kind,
        y_label="output tokens/s",
        markers=True,
    )
    rps = [r.metrics.request_throughput for r in runs]
    lat = line_chart(
        [Series(name, rps, [getattr(r.metrics, attr).p99 * 1e3 if q == 99 else getattr(r.metrics, attr).p50 * 1e3 for r in runs])
         for name, attr, q in (("TTFT p50", "ttft", 50), ("TTFT p99", "ttft", 99), ("TPOT p50", "tpot", 50), ("TPOT p99", "tpot", 99))],
        title="Latency vs throughput", x_label="achieved req/s", y_label="ms", markers=True,
    )  # fmt: skip
    note = (
        f"<p>Stopped: {escape(report.sweep.stopped_reason)}</p>"
        if report.sweep.stopped_reason
        else ""
    )
    best = (
        f"<p>Highest passing {escape(kind)}: {report.sweep.best_passing:g}</p>"
        if report.sweep.best_passing is not None
        else ""
    )
    return f'<h2>Sweep ({escape(kind)})</h2>{note}{best}<div class="charts">{thr}{lat}</div>'


def render_html(report: BenchReport, summary: dict[str, object]) -> str:
    """The full HTML document."""
    p = report.provenance
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>inferplane bench — {escape(p.model)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>inferplane bench — {escape(p.model)} @ {escape(p.target.url)}</h1>",
        f"<p>workload <b>{escape(p.workload)}</b>, started {escape(p.host.started_at_utc)}, "
        f"streaming {'on' if p.stream else 'off'}, runs: {len(report.runs)}</p>",
    ]
    warnings = [f"<b>{escape(r.label)}</b>: {escape(w)}" for r in report.runs for w in r.warnings]
    parts += [f'<div class="warn">{w}</div>' for w in warnings + [escape(n) for n in report.notes]]
    parts += ["<h2>Summary</h2>", _summary_table(report.runs)]
    if report.sweep is not None and len(report.runs) > 1:
        parts.append(_sweep(report))
    parts += ["<h2>Latency distributions (CDF)</h2>", _cdfs(report.runs)]
    for run in report.runs:
        m = run.metrics
        parts += [f"<h2>Run {escape(run.label)}</h2>", _dist_table(run), _timeseries(run)]
        fidelity = [
            ["offered rate (req/s)", _f(m.offered_rps)], ["achieved send rate (req/s)", _f(m.achieved_rps)],
            ["schedule lag p50 / p99 (ms)", f"{_f(m.schedule_lag.p50 * 1e3, 3)} / {_f(m.schedule_lag.p99 * 1e3, 3)}"],
            ["client CPU % per worker", ", ".join(_f(c, 0) for c in run.client_cpu_pct)],
            ["peak 1-s output tok/s", _f(m.peak_output_throughput_1s, 1)],
            ["steady-state out tok/s", _f(m.steady.output_throughput, 1) if m.steady else "- (window < 1 s)"],
            ["input / cached / output tokens", f"{m.tokens.input_tokens:,} / {m.tokens.cached_input_tokens:,} / {m.tokens.output_tokens:,}"],
            ["OSL sources", ", ".join(f"{k}: {v}" for k, v in m.tokens.osl_sources.items())],
            ["OSL client/server ratio, disagreements", f"{_f(m.tokens.osl_estimate_ratio)} , {m.tokens.osl_disagreements}"],
            ["errors", ", ".join(f"{k}: {v}" for k, v in m.errors.items()) or "none"],
            ["SLOs met", ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in m.slo_met.items()) or "no SLOs given"],
        ]  # fmt: skip
        parts.append(_table(["load fidelity & accounting", "value"], fidelity))
    defs = summary.get("definitions", {})
    assert isinstance(defs, dict)
    parts.append(
        "<h2>Definitions</h2><dl>"
        + "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in defs.items())
        + "</dl>"
    )
    prov = orjson.dumps(summary.get("provenance"), option=orjson.OPT_INDENT_2).decode()
    parts.append(f"<h2>Provenance</h2><pre>{escape(prov)}</pre></body></html>")
    return "".join(parts)
