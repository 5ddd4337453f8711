"""What ``choose`` shows and writes: terminal tables (rich), ``choose.json`` and a self-contained HTML page.

The HTML has no scripts or external assets: tables plus an inline SVG bar chart, with links to
each candidate's own bench report (``runs/<id>/bench/report.html``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape as _esc
from rich.table import Table

from inferplane.choose.compat import Verdict
from inferplane.choose.hardware import GiB, Hardware
from inferplane.choose.model_info import ModelInfo
from inferplane.choose.plan import Candidate, WorkloadSpec
from inferplane.choose.rank import Ranking

__all__ = ["ChooseReport", "print_compat", "print_plan", "print_ranking", "render_html", "write_files"]


@dataclass(frozen=True, slots=True)
class ChooseReport:
    models: tuple[ModelInfo, ...]
    hardware: Hardware
    verdicts: tuple[Verdict, ...]
    candidates: tuple[Candidate, ...]
    workload: WorkloadSpec
    slos: tuple[str, ...]
    ranking: Ranking
    complete: bool
    """False when the run was interrupted: the ranking covers what finished."""
    deployment_path: str = ""


def _ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    return "inf" if math.isinf(seconds) else f"{seconds * 1e3:,.0f}"


def _fmt(v: float | None, digits: int = 3) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.{digits}g}"


def print_compat(models: Sequence[ModelInfo], hw: Hardware, verdicts: Sequence[Verdict], console: Console) -> None:
    console.print(f"[bold]Hardware:[/] {_esc(hw.describe())}")
    for m in models:
        console.print(f"[bold]Model:[/] {_esc(m.describe())}")
    t = Table(title="Runtimes for this model on this machine", title_justify="left")
    for col in ("runtime", "here", "device", "weights", "why / notes"):
        t.add_column(col, overflow="fold")
    for v in verdicts:
        weights = f"{v.model.weight_format} {v.model.quantization or v.model.dtype or ''}".strip() if v.model else "-"
        why = v.reason if not v.viable else "; ".join(v.notes) or "ok"
        t.add_row(_esc(v.label), "[green]yes[/]" if v.viable else "[red]no[/]", v.device or "-", _esc(weights), _esc(why))
    console.print(t)


def print_plan(cands: Sequence[Candidate], workload: WorkloadSpec, slos: Sequence[str], console: Console) -> None:
    t = Table(title="Candidates", title_justify="left")
    for col in ("#", "candidate", "runtime", "device", "threads", "expected s"):
        t.add_column(col)
    for i, c in enumerate(cands, 1):
        threads = str(c.deployment.threads) if c.deployment.threads else "-"
        t.add_row(str(i), _esc(c.label), c.runtime, c.device, threads, f"{c.expected_s:.0f}")
    console.print(t)
    total = sum(c.expected_s for c in cands)
    console.print(f"[bold]Workload:[/] {_esc(workload.describe())}")
    console.print(f"[bold]SLOs:[/] {_esc(', '.join(slos)) or 'none (goodput = all successful requests)'}")
    console.print(f"[bold]Expected duration:[/] ~{total / 60:.1f} min ({total:.0f} s; a rough guide)")


_RANK_HEAD = ("#", "candidate", "status", "goodput/replica req/s", "$ per 1k good", "SLO attain.",
              "TTFT p95 ms", "TPOT p95 ms", "out tok/s", "ready s", "note")


def _rank_rows(ranking: Ranking) -> list[list[str]]:
    rows = []
    for e in ranking.entries:
        r = e.result
        usd_1k = f"{1000 / e.per_dollar:.3g}" if e.per_dollar else "-"
        att = f"{r.slo_attainment:.0%}" if r.slo_attainment is not None else "-"
        rows.append([str(e.rank), r.label, r.status, _fmt(e.goodput_per_replica) if r.ok else "-", usd_1k, att,
                     _ms(r.ttft_p95_s), _ms(r.tpot_p95_s), f"{r.output_throughput:.1f}" if r.ok else "-",
                     f"{r.startup_s:.1f}" if r.startup_s is not None else "-", e.note])
    return rows


def print_ranking(ranking: Ranking, console: Console, *, complete: bool = True) -> None:
    t = Table(title=f"Ranking by {ranking.metric}", title_justify="left")
    for col in _RANK_HEAD:
        t.add_column(col, overflow="fold")
    for row in _rank_rows(ranking):
        t.add_row(*(_esc(c) for c in row))
    console.print(t)
    if ranking.closest and not ranking.any_meets:
        console.print("[bold]Closest to the SLOs[/] (none meets them; worst observed/target ratio, lowest first):")
        for i, e in enumerate(ranking.closest, 1):
            console.print(f"  {i}. {_esc(e.result.label)}: {e.slo_gap:.2f}x  {_esc(e.note)}")
    if not complete:
        console.print("[yellow]Interrupted: the ranking covers only the candidates that finished.[/]")
    for note in ranking.notes:
        console.print(f"note: {_esc(note)}")
    style = "green" if ranking.any_meets else "yellow"
    console.print(f"[bold {style}]{escape_rich(ranking.verdict)}[/]")


def escape_rich(text: str) -> str:
    return _esc(text)


def summary_dict(rep: ChooseReport) -> dict[str, Any]:
    return {
        "schema_version": 1, "kind": "inferplane-choose", "complete": rep.complete,
        "hardware": {"description": rep.hardware.describe(), "cores": rep.hardware.cores,
                     "memory_bytes": rep.hardware.memory_bytes,
                     "gpus": [{"name": g.name, "vendor": g.vendor, "memory_bytes": g.memory_bytes}
                              for g in rep.hardware.gpus]},
        "models": [{"path": m.path, "format": m.weight_format, "architecture": m.architecture,
                    "parameters": m.parameter_count, "quantization": m.quantization, "dtype": m.dtype,
                    "context_length_tokens": m.context_length_tokens} for m in rep.models],
        "compatibility": [{"runtime": v.runtime, "viable": v.viable, "device": v.device, "reasons": list(v.reasons),
                           "notes": list(v.notes), "model": v.model.path if v.model else None} for v in rep.verdicts],
        "workload": {k: getattr(rep.workload, k) for k in rep.workload.__dataclass_fields__},
        "slos": list(rep.slos),
        "ranking": {"metric": rep.ranking.metric, "verdict": rep.ranking.verdict, "any_meets": rep.ranking.any_meets,
                    "notes": list(rep.ranking.notes),
                    "entries": [{"rank": e.rank, "score": e.score, "goodput_per_replica": e.goodput_per_replica,
                                 "per_dollar": e.per_dollar, "meets_slos": e.meets_slos, "note": e.note,
                                 "result": e.result.to_dict()} for e in rep.ranking.entries],
                    "closest_to_slos": [{"id": e.result.id, "slo_gap": e.slo_gap} for e in rep.ranking.closest]},
        "deployment_file": rep.deployment_path or None,
    }  # fmt: skip


_CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px}
th{background:#f4f4f4}.ok{color:#1a7f37}.no{color:#b42318}
.verdict{padding:10px 14px;margin:10px 0;border:1px solid #9ad29a;background:#eefbee}
.verdict.miss{border-color:#e0c060;background:#fff3cd}pre{background:#f7f7f7;padding:8px;font-size:12px}"""


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], raw_cols: frozenset[int] = frozenset()) -> str:
    h = "".join(f"<th>{escape(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{c if i in raw_cols else escape(c)}</td>" for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _bars(ranking: Ranking) -> str:
    ran = [e for e in ranking.entries if e.result.ok]
    if not ran:
        return ""
    top = max(e.score for e in ran) or 1.0
    w, row_h, left = 720, 26, 300
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{row_h * len(ran) + 10}" role="img" '
             f'aria-label="{escape(ranking.metric)}">']
    for i, e in enumerate(ran):
        y = 5 + i * row_h
        bw = max(1.0, (w - left - 80) * e.score / top)
        color = "#2ca02c" if e.meets_slos else "#e0a040"
        parts += [f'<text x="{left - 6}" y="{y + 16}" text-anchor="end" font-size="12">{escape(e.result.label)}</text>',
                  f'<rect x="{left}" y="{y + 3}" width="{bw:.1f}" height="{row_h - 8}" fill="{color}"/>',
                  f'<text x="{left + bw + 6:.1f}" y="{y + 16}" font-size="12">{e.score:.3g}</text>']
    parts.append("</svg>")
    return "".join(parts)


def render_html(rep: ChooseReport, out_dir: Path) -> str:
    rk = rep.ranking
    compat_rows = [[v.label, '<span class="ok">yes</span>' if v.viable else '<span class="no">no</span>',
                    escape(v.device or "-"), escape(v.reason if not v.viable else "; ".join(v.notes) or "ok")]
                   for v in rep.verdicts]
    rank_rows = []
    for row, e in zip(_rank_rows(rk), rk.entries, strict=True):
        cells = [escape(c) for c in row]
        link = Path(e.result.report_dir) / "bench" / "report.html"
        if e.result.report_dir and link.exists():
            rel = link.relative_to(out_dir) if link.is_relative_to(out_dir) else link
            cells[1] = f'<a href="{escape(str(rel))}">{cells[1]}</a>'
        rank_rows.append(cells)
    miss = "" if rk.any_meets else " miss"
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>inferplane choose</title>"
        f"<style>{_CSS}</style></head><body><h1>inferplane choose</h1>",
        f"<p><b>Hardware:</b> {escape(rep.hardware.describe())}</p>",
        *(f"<p><b>Model:</b> {escape(m.describe())}</p>" for m in rep.models),
        f"<p><b>Workload:</b> {escape(rep.workload.describe())}<br><b>SLOs:</b> {escape(', '.join(rep.slos) or 'none')}</p>",
        f'<div class="verdict{miss}">{escape(rk.verdict)}</div>',
        "" if rep.complete else '<div class="verdict miss">Interrupted: only finished candidates are ranked.</div>',
        *(f"<p>note: {escape(n)}</p>" for n in rk.notes),
        f"<h2>Ranking by {escape(rk.metric)}</h2>", _bars(rk),
        _table(_RANK_HEAD, rank_rows, frozenset(range(len(_RANK_HEAD)))),
        "" if rk.any_meets or not rk.closest else
        "<h2>Closest to the SLOs</h2><p>None meets them; by the worst observed/target ratio, lowest first.</p><ol>"
        + "".join(f"<li>{escape(e.result.label)}: {e.slo_gap:.2f}x {escape(e.note)}</li>" for e in rk.closest)
        + "</ol>",
        "<h2>Compatibility</h2>", _table(("runtime", "here", "device", "why / notes"), compat_rows,
                                         frozenset({1, 2, 3})),
        f"<p>Memory: need vs have per viable runtime: "
        f"{escape(', '.join(f'{v.label} {v.memory_need_bytes / GiB:.2f}/{v.memory_have_bytes / GiB:.1f} GiB' for v in rep.verdicts if v.viable))}</p>",
    ]  # fmt: skip
    if rep.deployment_path:
        try:
            text = Path(rep.deployment_path).read_text(encoding="utf-8")
        except OSError:
            text = ""
        parts += [f"<h2>Deployment file ({escape(rep.deployment_path)})</h2><pre>{escape(text)}</pre>"]
    parts.append("</body></html>")
    return "".join(parts)


def write_files(rep: ChooseReport, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "choose.json", "html": out_dir / "choose.html"}
    paths["json"].write_bytes(orjson.dumps(summary_dict(rep), option=orjson.OPT_INDENT_2))
    paths["html"].write_text(render_html(rep, out_dir), encoding="utf-8")
    return paths
