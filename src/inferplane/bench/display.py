"""Terminal output: a live progress line while running, a summary table at the end (rich)."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from inferplane.bench.analysis import RunOutcome
from inferplane.bench.metrics import DEFINITIONS
from inferplane.bench.report import BenchReport
from inferplane.bench.runner import LiveCounters
from inferplane.bench.stats import INTERPOLATION

__all__ = ["LiveDisplay", "print_summary"]


class LiveDisplay:
    """Progress of one run, redrawn on ``tick()`` (called ~4x/s by the runner). No-op when disabled."""

    def __init__(
        self,
        console: Console,
        label: str,
        total: int | None,
        counters: LiveCounters,
        enabled: bool = True,
    ) -> None:
        self.console = console
        self.label = label
        self.total = total
        self.counters = counters
        self.enabled = enabled and console.is_terminal
        self._live: Live | None = None
        self._start = time.monotonic()

    def __enter__(self) -> LiveDisplay:
        self._start = time.monotonic()
        if self.enabled:
            self._live = Live(
                self._render(), console=self.console, auto_refresh=False, transient=True
            )
            self._live.__enter__()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.__exit__(et, e, tb)
            self._live = None

    def tick(self) -> None:
        """Redraw with the current counters."""
        if self._live is not None:
            self._live.update(self._render(), refresh=True)

    def _render(self) -> Text:
        done, failed, tokens = self.counters.totals()
        elapsed = max(time.monotonic() - self._start, 1e-9)
        total = f"/{self.total}" if self.total else ""
        return Text.assemble(
            (f"{self.label}  ", "bold cyan"),
            f"{done}{total} done  ",
            (f"{failed} failed  ", "red" if failed else "dim"),
            f"{done / elapsed:.1f} req/s  {tokens / elapsed:.0f} out tok/s  {elapsed:.0f} s",
        )


def _ms(v: float) -> str:
    if v != v:  # NaN
        return "-"
    return "inf" if v == float("inf") else f"{v * 1e3:.2f}"


def _run_table(run: RunOutcome) -> Table:
    m = run.metrics
    t = Table(
        title=f"{run.label}: {m.n_ok}/{m.n_requests} ok in {m.duration_s:.2f} s",
        title_justify="left",
    )
    for col in ("metric (ms)", "mean", "p50", "p90", "p99", "max"):
        t.add_column(col, justify="right" if col != "metric (ms)" else "left")
    for name, d in (
        ("TTFT", m.ttft), ("TTFT_sched", m.ttft_sched), ("TPOT", m.tpot), ("ICL", m.icl), ("E2E", m.e2e),
        ("NTPOT", m.ntpot), ("TTFT err-adj", m.ttft_error_adjusted), ("sched lag", m.schedule_lag),
    ):  # fmt: skip
        t.add_row(name, _ms(d.mean), _ms(d.p50), _ms(d.p90), _ms(d.p99), _ms(d.max))
    return t


def print_summary(report: BenchReport, console: Console) -> None:
    """Throughput line, latency table and warnings per run, then a sweep table and definitions."""
    for run in report.runs:
        m = run.metrics
        console.print(_run_table(run))
        good = (
            f"  goodput {m.goodput_rps:.2f} req/s ({m.slo_attainment:.0%} met SLOs)"
            if m.goodput_rps is not None
            else ""
        )
        console.print(
            f"  {m.request_throughput:.2f} req/s  out {m.output_throughput:.1f} tok/s  total {m.total_token_throughput:.1f} tok/s"
            f"  peak 1s out {m.peak_output_throughput_1s:.1f} tok/s{good}\n"
            f"  concurrency mean {m.concurrency_mean:.2f} peak {m.concurrency_peak}  tokens/chunk {m.tokens_per_chunk.mean:.2f}"
            f"  OSL sources {m.tokens.osl_sources}  client CPU {', '.join(f'{c:.0f}%' for c in run.client_cpu_pct)}"
        )
        for k, v in m.slo_met.items():
            console.print(f"  SLO {k}: {'[green]met[/]' if v else '[red]NOT met[/]'}")
        for w in run.warnings:
            console.print(f"  [yellow]warning:[/] {w}")
    if report.sweep is not None and len(report.runs) > 1:
        t = Table(title=f"sweep over {report.sweep.kind}", title_justify="left")
        for col in (
            "load",
            "req/s",
            "out tok/s",
            "TTFT p50",
            "TTFT p99",
            "TPOT p50",
            "TPOT p99",
            "conc. mean",
        ):
            t.add_column(col, justify="right")
        for run in report.runs:
            m = run.metrics
            t.add_row(
                run.label,
                f"{m.request_throughput:.2f}",
                f"{m.output_throughput:.1f}",
                _ms(m.ttft.p50),
                _ms(m.ttft.p99),
                _ms(m.tpot.p50),
                _ms(m.tpot.p99),
                f"{m.concurrency_mean:.2f}",
            )
        console.print(t)
        if report.sweep.stopped_reason:
            console.print(f"  sweep stopped: {report.sweep.stopped_reason}")
        if report.sweep.best_passing is not None:
            console.print(
                f"  highest {report.sweep.kind} meeting the SLOs: {report.sweep.best_passing:g}"
            )
    console.print(
        "[dim]Definitions: "
        + "; ".join(f"{k} = {DEFINITIONS[k]}" for k in ("TTFT", "TPOT", "ICL", "E2E"))
        + f". Percentiles: {INTERPOLATION}.[/]"
    )
