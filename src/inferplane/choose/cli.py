"""``inferplane choose``: which runtime, with which settings, for this model, machine and traffic.

Steps: read the model (GGUF header / HF config) and the hardware; say which runtimes can
serve it here and why the others cannot; expand each viable runtime's settings grid into
candidates; measure each through ``inferplane serve --config`` with the same workload; rank
under the SLOs; write ``choose.json``, ``choose.html`` and the winner's deployment file.
``--dry-run`` stops after the plan. Ctrl-C stops the running candidate, keeps the results
so far and still writes the reports.

Exit codes: 0 a recommendation was made (see the verdict: it may be "closest" when no
candidate meets the SLOs), 1 no candidate completed a run, 2 bad arguments or model,
130 interrupted (partial results and reports written).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import FrameType

from rich.console import Console

from inferplane.bench.slo import SloTarget, parse_slos
from inferplane.bench.workloads import WorkloadError
from inferplane.choose import compat, emit, measure, plan, rank, report
from inferplane.choose.hardware import detect_hardware
from inferplane.choose.model_info import ModelInfo, ModelInfoError, inspect_model
from inferplane.config.models import ConfigError, DeploymentConfig
from inferplane.console import error_line, make_console
from inferplane.models.store import CATALOG, ModelError, ModelStore
from inferplane.placement.cpu import usable_cores
from inferplane.runtimes.registry import UnknownRuntimeError, adapter_names, get_adapter

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register every ``choose`` flag on ``p``."""
    m = p.add_argument_group("model and runtimes")
    m.add_argument("--model", "-m", action="append", default=None,
                   help="model-store name, GGUF file or HF folder; repeat to give the same model in other "
                        "formats (e.g. a GGUF and an HF folder); default smollm2")
    m.add_argument("--name", default=None, help="model name clients send (default: the store name or file stem)")
    m.add_argument("--runtimes", default=None, help="comma-separated runtimes to consider (default: all)")
    m.add_argument("--settings", action="append", default=[],
                   help='settings grid per runtime, e.g. "embedded:parallel=1,4;threads=1,2" '
                        '"vllm:executable=.venv-vllm/bin/python;dtype=float32" (repeatable)')
    w = p.add_argument_group("workload")
    w.add_argument("--workload", default="synthetic",
                   help="the traffic every candidate is measured with: synthetic (default), sharegpt, "
                        "shared-prefix, or trace:FILE (a gateway access log or JSONL trace, replayed at its "
                        "recorded arrival times)")
    w.add_argument("--requests", type=int, default=None,
                   help="measured requests per candidate (default 20; trace: the whole file)")
    w.add_argument("--trace-speed", type=float, default=1.0, help="trace: replay speed factor (default 1)")
    w.add_argument("--concurrency", type=int, default=4, help="closed-loop users (default 4)")
    w.add_argument("--input-len", type=int, default=128, help="synthetic: prompt tokens (default 128)")
    w.add_argument("--output-len", type=int, default=64, help="synthetic: max_tokens (default 64)")
    w.add_argument("--max-tokens", type=int, default=None, help="sharegpt: cap on max_tokens")
    w.add_argument("--warmup", type=int, default=2, help="warm-up requests per candidate (default 2)")
    w.add_argument("--seed", type=int, default=0, help="workload seed (same seed, same prompts)")
    r = p.add_argument_group("ranking and output")
    r.add_argument("--slo", default=None, help="e.g. ttft_p95=1s,tpot_p95=100ms (default percentile p99)")
    r.add_argument("--price", default=None, help="USD per hour of one replica: RUNTIME_OR_HW=USD, "
                   "e.g. cpu=0.10,vllm=0.25,nvidia=2.5 (ranks per dollar when every candidate has one)")
    r.add_argument("--tie-tolerance", type=float, default=rank.TIE_TOLERANCE,
                   help="relative score difference counted as a tie (default 0.02)")
    r.add_argument("--output-dir", type=Path, default=None, help="default ./choose-results/<timestamp>")
    r.add_argument("--emit", type=Path, default=None, help="deployment file (default <output-dir>/deploy.yaml)")
    r.add_argument("--with-fallback", action="store_true", help="add the runner-up as a fallback deployment")
    r.add_argument("--dry-run", action="store_true", help="print the plan; launch nothing")
    r.add_argument("--no-progress", dest="progress", action="store_false", help="no live progress line")


class _Usage(ValueError):
    pass


def _models(refs: list[str], console: Console) -> tuple[list[ModelInfo], dict[str, str], str]:
    """(model copies, path -> how to name it in a deployment, default served name)."""
    store = ModelStore()
    infos, named = [], {}
    for ref in refs:
        try:
            path = store.resolve(ref, progress=lambda msg: console.print(msg))
            info = inspect_model(path)
        except (ModelError, ModelInfoError) as exc:
            raise _Usage(str(exc)) from exc
        infos.append(info)
        named[info.path] = ref if ref in CATALOG else str(Path(ref).expanduser().resolve())
    first = refs[0]
    served = first if first in CATALOG else Path(first).stem if first.endswith(".gguf") else Path(first).name
    return infos, named, served


def _facts(names: list[str], grids: dict[str, plan.Grid]) -> dict[str, compat.RuntimeFacts]:
    out = {}
    for name in names:
        try:
            adapter = get_adapter(name)
        except UnknownRuntimeError as exc:
            raise _Usage(str(exc)) from exc
        exe = grids.get(name, {}).get("executable")
        probe = DeploymentConfig.model_validate({"name": "probe", "runtime": name, "executable": exe[0]}) if exe else None
        avail = adapter.availability_for(probe) if probe else adapter.availability()
        out[name] = compat.RuntimeFacts(name, adapter.capabilities(), avail)
    return out


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C while measuring: the running candidate is stopped cleanly.

    With an event loop running (the load generator's uvloop), the interrupt is raised from a
    callback the loop runs next, not from the handler itself: a signal handler runs wherever the
    main thread happens to be, and an exception raised inside a protocol callback (aiohttp's
    ``data_received``) is taken by uvloop for that transport's fatal error — the interrupt was
    lost and the run went on (seen in CI: one request failed, the candidate finished "ok").
    A loop callback's KeyboardInterrupt propagates out of the loop, as Ctrl-C's does.
    """
    def interrupt() -> None:
        raise KeyboardInterrupt

    def handler(_sig: int, _frame: FrameType | None) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread: nothing can swallow it
            raise KeyboardInterrupt from None
        loop.call_soon_threadsafe(interrupt)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    """Run ``choose`` as described by ``args``; returns the exit code."""
    out = make_console()
    err = make_console(stderr=True)
    try:
        return _run(args, out, err)
    except (_Usage, ConfigError, ValueError) as exc:
        error_line(err, str(exc))
        return 2


def _workload_spec(args: argparse.Namespace) -> plan.WorkloadSpec:
    kind = str(args.workload)
    spec = plan.WorkloadSpec(kind=kind, requests=args.requests or 20, concurrency=args.concurrency,
                             input_len=args.input_len, output_len=args.output_len, max_tokens=args.max_tokens,
                             warmup_requests=args.warmup, seed=args.seed, trace_speed=args.trace_speed)
    if kind in ("synthetic", "sharegpt", "shared-prefix"):
        return spec
    if not spec.is_trace:
        raise _Usage(f"unknown workload {kind!r}: use synthetic, sharegpt, shared-prefix or trace:FILE")
    try:  # read it once now: a bad file fails before anything starts, and the plan knows its size
        work = measure.build_workload(replace(spec, requests=args.requests or 1 << 30), nonce="plan")
    except WorkloadError as exc:
        raise _Usage(str(exc)) from exc
    reqs = work.requests
    return replace(spec, requests=len(reqs), input_len=round(sum(r.input_tokens_estimate for r in reqs) / len(reqs)),
                   output_len=round(sum(r.max_tokens for r in reqs) / len(reqs)))


def _run(args: argparse.Namespace, out: Console, err: Console) -> int:
    if (args.requests is not None and args.requests < 1) or args.concurrency < 1:
        raise _Usage("--requests and --concurrency must be >= 1")
    workload = _workload_spec(args)
    slos: tuple[SloTarget, ...] = parse_slos(args.slo) if args.slo else ()
    prices = rank.parse_prices(args.price)
    grids = plan.parse_settings(args.settings)
    names = [n.strip() for n in args.runtimes.split(",") if n.strip()] if args.runtimes else list(adapter_names())
    unknown = set(grids) - set(names)
    if unknown:
        raise _Usage(f"--settings for runtimes not considered: {', '.join(sorted(unknown))} (see --runtimes)")
    models, refs, served = _models(args.model or ["smollm2"], err)
    hw = detect_hardware()
    verdicts = compat.check(models, hw, _facts(names, grids))
    name = args.name or served
    cands = plan.candidates(verdicts, grids, workload, hw, served_name=name, model_refs=refs,
                            cpu_threads=usable_cores())
    slo_labels = tuple(s.label() for s in slos)
    report.print_compat(models, hw, verdicts, out)
    report.print_plan(cands, workload, slo_labels, out)
    if args.dry_run:
        out.print("[bold]Dry run:[/] nothing was launched.")
        return 0
    if not cands:
        err.print("[red]No runtime can serve this model here[/] (reasons above): nothing to measure.")
        return 1
    out_dir = args.output_dir or Path("choose-results") / time.strftime("%Y%m%d-%H%M%S")
    cfg = measure.MeasureConfig(out_dir=out_dir, workload=workload, slos=slos, nonce=os.urandom(4).hex())
    with _sigterm_as_interrupt():
        results = measure.measure_all(cands, cfg, lambda msg: err.print(report.escape_rich(msg)),
                                      err if args.progress else None)
    complete = len(results) == len(cands) and all(r.status != "interrupted" for r in results)
    ranking = rank.rank(results, prices, tie_tolerance=args.tie_tolerance)
    report.print_ranking(ranking, out, complete=complete)
    deploy_path = ""
    if complete and ranking.winner is not None:
        path = args.emit or out_dir / "deploy.yaml"
        emit.write_deployment(path, ranking, name=name, fallback=args.with_fallback,
                              workload=workload.describe(), slos=", ".join(slo_labels))
        deploy_path = str(path)
        out.print(f"[bold]Deployment:[/] {path}  (run: inferplane serve --config {path})")
    elif not complete:
        out.print("No deployment file written: the run was interrupted (rerun to finish).")
    rep = report.ChooseReport(tuple(models), hw, verdicts, cands, workload, slo_labels, ranking, complete,
                              deploy_path)
    paths = report.write_files(rep, out_dir)
    out.print("files: " + "  ".join(f"{k}={v}" for k, v in paths.items()) + f"  results={out_dir / 'results.jsonl'}")
    if not complete:
        return 130
    return 0 if ranking.winner is not None else 1
