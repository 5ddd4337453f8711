"""Report files: versioned JSON summary, per-request JSONL, a CSV row per run, HTML.

``summary.json`` layout (``schema_version`` bumps on any incompatible change)::

    {"schema_version": 1, "kind": "inferplane-bench", "provenance": {...},
     "definitions": {...}, "runs": [{"label", "load", "metrics", "client_cpu_pct", "warnings"}],
     "sweep": {...} | null}

Latencies in the JSON are seconds; ``null`` is NaN (no data) and ``"inf"`` is +inf.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from inferplane.bench.analysis import CPU_SATURATED_PCT, LAG_P99_WARN_S, RunOutcome
from inferplane.bench.metrics import DEFINITIONS
from inferplane.bench.provenance import ClientHost, TargetInfo
from inferplane.bench.stats import INTERPOLATION, json_num
from inferplane.bench.tokens import ESTIMATE_METHOD

__all__ = [
    "SCHEMA_VERSION",
    "BenchReport",
    "Provenance",
    "SweepInfo",
    "csv_row",
    "summary_dict",
    "write_report",
]

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Provenance:
    """Everything needed to reproduce or judge a run."""

    target: TargetInfo
    host: ClientHost
    model: str
    api: str
    stream: bool
    workload: str
    workload_params: dict[str, object]
    dataset_sha256: str | None
    seed: int
    slos: tuple[str, ...]
    command: tuple[str, ...] = ()
    client_workers: int = 1


@dataclass(frozen=True, slots=True)
class SweepInfo:
    """How a multi-run sweep went: what was varied and why it stopped."""

    kind: str
    values: tuple[float, ...]
    stopped_reason: str | None = None
    best_passing: float | None = None


@dataclass(frozen=True, slots=True)
class BenchReport:
    """A whole benchmark invocation: one run, or the steps of a sweep."""

    provenance: Provenance
    runs: tuple[RunOutcome, ...]
    sweep: SweepInfo | None = None
    notes: tuple[str, ...] = field(default=())


def _plain(obj: object) -> object:
    """Dataclasses/dicts/tuples to JSON-ready values (NaN -> null, inf -> "inf")."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float):
        return json_num(obj)
    return obj


def _run_dict(run: RunOutcome) -> dict[str, object]:
    metrics = _plain(run.metrics)
    assert isinstance(metrics, dict)
    return {
        "label": run.label,
        "load": {**_plain(run.load), "mode": run.load.mode},  # type: ignore[dict-item]
        "metrics": metrics,
        "client_cpu_pct": list(run.client_cpu_pct),
        "warnings": list(run.warnings),
    }


def summary_dict(report: BenchReport) -> dict[str, object]:
    """The JSON summary as a dict (see module docstring)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "inferplane-bench",
        "provenance": _plain(report.provenance),
        "definitions": {
            **DEFINITIONS,
            "percentiles": INTERPOLATION,
            "std": "sample standard deviation (n - 1)",
            "token_estimate": ESTIMATE_METHOD,
            "client_saturated": f"a client worker above {CPU_SATURATED_PCT:.0f}% CPU",
            "schedule_lag": f"t_send - t_sched; warned above p99 {LAG_P99_WARN_S * 1e3:.0f} ms in open loop",
        },
        "runs": [_run_dict(r) for r in report.runs],
        "sweep": _plain(report.sweep) if report.sweep else None,
        "notes": list(report.notes),
    }


CSV_FIELDS = (
    "started_at_utc", "label", "url", "model", "workload", "mode", "requests", "ok", "failed", "duration_s",
    "request_throughput", "output_throughput", "total_token_throughput", "goodput_rps", "slo_attainment",
    "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "icl_p50_ms", "icl_p99_ms",
    "e2e_p50_ms", "e2e_p99_ms", "concurrency_mean", "concurrency_peak", "schedule_lag_p99_ms",
    "client_cpu_max_pct", "warnings",
)  # fmt: skip


def csv_row(report: BenchReport, run: RunOutcome) -> dict[str, object]:
    """One CSV row (latencies in ms)."""
    m, p = run.metrics, report.provenance

    def ms(v: float) -> object:
        return "" if math.isnan(v) else round(v * 1e3, 3)

    def num(v: float | None) -> object:
        return "" if v is None else round(v, 4)

    return {
        "started_at_utc": p.host.started_at_utc, "label": run.label, "url": p.target.url, "model": p.model,
        "workload": p.workload, "mode": run.load.describe(), "requests": m.n_requests, "ok": m.n_ok,
        "failed": m.n_failed, "duration_s": num(m.duration_s), "request_throughput": num(m.request_throughput),
        "output_throughput": num(m.output_throughput), "total_token_throughput": num(m.total_token_throughput),
        "goodput_rps": num(m.goodput_rps), "slo_attainment": num(m.slo_attainment),
        "ttft_p50_ms": ms(m.ttft.p50), "ttft_p99_ms": ms(m.ttft.p99), "tpot_p50_ms": ms(m.tpot.p50),
        "tpot_p99_ms": ms(m.tpot.p99), "icl_p50_ms": ms(m.icl.p50), "icl_p99_ms": ms(m.icl.p99),
        "e2e_p50_ms": ms(m.e2e.p50), "e2e_p99_ms": ms(m.e2e.p99), "concurrency_mean": num(m.concurrency_mean),
        "concurrency_peak": m.concurrency_peak, "schedule_lag_p99_ms": ms(m.schedule_lag.p99),
        "client_cpu_max_pct": num(max(run.client_cpu_pct, default=0.0)), "warnings": " | ".join(run.warnings),
    }  # fmt: skip


def write_csv(report: BenchReport, path: Path, *, append: bool = False) -> None:
    """Write (or append to) a CSV with one row per run; the header is written once."""
    new = not (append and path.exists() and path.stat().st_size > 0)
    with path.open("a" if append else "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        if new:
            writer.writeheader()
        for run in report.runs:
            writer.writerow(csv_row(report, run))


def write_jsonl(runs: Sequence[RunOutcome], path: Path) -> None:
    """Per-request records, one JSON object a line, times in ns relative to each run's first t_sched."""
    with path.open("wb") as fh:
        for run in runs:
            t0 = min((r.t_sched_ns for r in run.records), default=0)
            for rec in run.records:
                fh.write(orjson.dumps({"run": run.label, **rec.to_dict(t0)}) + b"\n")


def write_report(
    report: BenchReport, out_dir: Path, *, csv_append: Path | None = None
) -> dict[str, Path]:
    """Write every file into ``out_dir`` (created); returns {kind: path}."""
    from inferplane.bench.html import render_html

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "summary.json",
        "jsonl": out_dir / "requests.jsonl",
        "csv": out_dir / "summary.csv",
        "html": out_dir / "report.html",
    }
    summary = summary_dict(report)
    paths["json"].write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    write_jsonl(report.runs, paths["jsonl"])
    write_csv(report, paths["csv"])
    if csv_append is not None:
        write_csv(report, csv_append, append=True)
        paths["csv_append"] = csv_append
    paths["html"].write_text(render_html(report, summary), encoding="utf-8")
    return paths
