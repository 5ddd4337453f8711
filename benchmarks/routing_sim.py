"""Routing-policy simulator: prefix-cache hit rate, TTFT, throughput and balance per policy.

Replays (1) ShareGPT multi-turn conversations (each turn's prompt = the whole history),
(2) synthetic groups (G groups x long system prompt x short questions, Zipf-popular) and
(3) a shared-system-prompt mix (two system prompts and none, over ShareGPT questions)
against N simulated replicas with a prefix-cache cost model (see
``routing_sim/sim_cluster.py``), routed by the gateway's own registry, router and policies
(the same objects `inferplane serve` builds), whose CPU time per decision is measured and
printed (``us/dec``): the trade-off between cache locality and routing cost as the fleet
grows. Arrivals are Poisson at a rate that would load the cluster to ``--util`` with no
cache hits; each seed draws its own arrivals, group choices and conversations.

    python benchmarks/routing_sim.py                                   # 16..1,000 replicas
    python benchmarks/routing_sim.py --replicas 16 --requests-per-replica 200 --seeds 1,2,3
    python benchmarks/routing_sim.py --replicas 16 --gateways 1,2,4 --policies prefix   # scale-out cost
    python benchmarks/routing_sim.py --compare-src /tmp/base/src       # before/after, same seeds
    PYTHONPATH=/path/to/other/src python benchmarks/routing_sim.py     # another tree's router

Columns: hit% (prompt tokens served from cache), pred% (what the prefix policy predicted),
TTFT p50/p99, tput (requests completed per simulated second), infl (load imbalance: the
busiest replica's time-averaged in-flight count over the mean's), served (requests on the
busiest replica over the mean), us/dec (router CPU per request). With several seeds a
summary follows: mean and [min, max] over the seeds. With --compare-src the same runs also
go through another source tree's router (a subprocess, PYTHONPATH), side by side.

Prints numbers only; nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE / "routing_sim"))
try:
    import inferplane
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(_HERE.parent / "src"))
    import inferplane

from sim_cluster import RunStats, SimParams, simulate  # noqa: E402
from sim_workloads import SharedPromptSource, ShareGPTSource, SystemMixSource, load_sharegpt  # noqa: E402

from inferplane.routing.policies import POLICY_NAMES  # noqa: E402

WORKLOADS = ("sharegpt", "shared", "mix")
_SUMMARY = (("hit%", "hit_rate", 100.0, 1), ("ttft50", "ttft_p50_s", 1000.0, 0), ("ttft99", "ttft_p99_s", 1000.0, 0),
            ("tput", "throughput_rps", 1.0, 0), ("infl", "inflight_max_over_mean", 1.0, 2))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = SimParams()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replicas", default="16,64,256,1000", help="comma-separated replica counts")
    p.add_argument("--policies", default=",".join(POLICY_NAMES))
    p.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated, of {', '.join(WORKLOADS)}")
    p.add_argument("--gateways", default="1", help="comma-separated counts of independent gateways")
    p.add_argument("--scrape-s", type=float, default=1.0, help="metrics scrape interval (gateways > 1)")
    p.add_argument("--prefix-option", action="append", default=[], metavar="NAME=VALUE",
                   help="a PrefixPolicy option, e.g. w_cache=2 or home_share=0 (repeatable)")
    p.add_argument("--requests-per-replica", type=int, default=60)
    p.add_argument("--min-requests", type=int, default=3000)
    p.add_argument("--max-requests", type=int, default=30000)
    p.add_argument("--conversations", type=int, default=6000, help="ShareGPT conversations")
    p.add_argument("--think-s", type=float, default=10.0, help="mean ShareGPT user think time")
    p.add_argument("--groups", type=int, default=48, help="shared-prompt groups")
    p.add_argument("--system-chars", type=int, default=8000, help="shared system prompt size")
    p.add_argument("--zipf", type=float, default=1.0, help="group popularity skew")
    p.add_argument("--util", type=float, default=0.7, help="target load with no cache hits")
    p.add_argument("--slots", type=int, default=defaults.slots)
    p.add_argument("--cache-blocks", type=int, default=defaults.cache_blocks)
    p.add_argument(
        "--index-blocks",
        type=int,
        default=0,
        help="prefix policy's per-endpoint index bound (0 = same as --cache-blocks); "
        "differ to see mis-estimated caches and the observe_cached correction",
    )
    p.add_argument("--block-chars", type=int, default=defaults.block_chars)
    p.add_argument("--no-feedback", action="store_true", help="don't call observe_cached")
    p.add_argument("--seeds", default="1", help="comma-separated seeds (each its own arrivals and choices)")
    p.add_argument("--seed", type=int, help="one seed (same as --seeds N)")
    p.add_argument("--compare-src", help="also run every cell through this source tree's router (PYTHONPATH)")
    p.add_argument("--json", help="also write every row to this file (JSON lines)")
    p.add_argument("--label", default="this", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.seed is not None:
        args.seeds = str(args.seed)
    return args


def _number(text: str) -> int | float:
    """A policy option's value: an int where it reads as one (sample sizes), else a float."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _fmt(stats: RunStats) -> str:
    pred = "-" if stats.predicted_hit_rate is None else f"{100 * stats.predicted_hit_rate:5.1f}"
    return (
        f"{100 * stats.hit_rate:6.1f} {pred:>6} {1000 * stats.ttft_p50_s:8.0f} "
        f"{1000 * stats.ttft_p99_s:8.0f} {stats.throughput_rps:7.0f} {stats.inflight_max_over_mean:6.2f} "
        f"{stats.max_over_mean:6.2f} {stats.decision_us:7.1f}"
    )


def _source(workload: str, convs: list, rng: random.Random, args: argparse.Namespace,
            params: SimParams) -> tuple[object, float, float]:
    """The request source for ``workload`` and its mean (prompt, output) tokens per request."""
    if workload == "sharegpt":
        return ShareGPTSource(convs, rng, think_s=args.think_s), *ShareGPTSource.mean_turn(convs)
    if workload == "mix":
        source = SystemMixSource(convs, rng, system_chars=args.system_chars, block_chars=params.block_chars,
                                 chars_per_token=params.chars_per_token)
        return source, *source.mean_turn()
    source = SharedPromptSource(rng, groups=args.groups, system_chars=args.system_chars,
                                block_chars=params.block_chars, chars_per_token=params.chars_per_token,
                                zipf_s=args.zipf)
    return source, *source.mean_turn()


def _run_all(args: argparse.Namespace, params: SimParams, label: str, rows: list[dict]) -> None:
    """Simulate every cell through the router imported here; print and collect each row."""
    replica_counts = [int(x) for x in args.replicas.split(",")]
    policies = args.policies.split(",")
    gateway_counts = [int(x) for x in args.gateways.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    workloads = args.workloads.split(",")
    convs = []
    if {"sharegpt", "mix"} & set(workloads):
        convs = load_sharegpt(
            max_conversations=args.conversations,
            block_chars=params.block_chars,
            chars_per_token=params.chars_per_token,
            max_prompt_chars=32_000,
            max_output_tokens=512,
        )
    for workload in workloads:
        for n in replica_counts:
            requests = min(args.max_requests, max(args.min_requests, args.requests_per_replica * n))
            for name, gws, seed in [(p, g, s) for p in policies for g in gateway_counts for s in seeds]:
                source, mean_in, mean_out = _source(workload, convs, random.Random(seed), args, params)
                service_s = mean_in * params.prefill_s_per_token + mean_out * params.decode_s_per_token
                rate = args.util * n * params.slots / service_s
                options: dict[str, object] = {}
                if name == "power_of_two":
                    options["seed"] = seed
                if name == "prefix":
                    options["max_blocks_per_endpoint"] = args.index_blocks or params.cache_blocks
                    options.update({k: _number(v) for k, v in (x.split("=", 1) for x in args.prefix_option)})
                stats = simulate(
                    name,
                    source,  # type: ignore[arg-type]
                    replicas=n,
                    rate_per_s=rate,
                    requests=requests,
                    params=dataclasses.replace(params, gateways=gws, scrape_s=args.scrape_s),
                    seed=seed,
                    policy_options=options,
                )
                print(f"{workload:9} {n:>4} {gws:>2} {seed:>4} {name:13} {label:>6} {stats.requests:>5} {_fmt(stats)}",
                      flush=True)
                rows.append({"workload": workload, "replicas": n, "gateways": gws, "seed": seed, "policy": name,
                             "src": label, **dataclasses.asdict(stats)})


def _header() -> None:
    header = (
        f"{'workload':9} {'N':>4} {'gw':>2} {'seed':>4} {'policy':13} {'src':>6} {'reqs':>5} {'hit%':>6} {'pred%':>6} "
        f"{'ttft50ms':>8} {'ttft99ms':>8} {'tput':>7} {'infl':>6} {'served':>6} {'us/dec':>7}"
    )
    print(header)
    print("-" * len(header), flush=True)


def _summary(rows: list[dict]) -> None:
    """Mean and [min, max] over seeds, per workload x replicas x gateways x policy x source tree."""
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault((r["workload"], r["replicas"], r["gateways"], r["policy"], r["src"]), []).append(r)
    if all(len(v) < 2 for v in cells.values()):
        return
    print(f"\nover seeds: mean [min, max]\n{'workload':9} {'N':>4} {'gw':>2} {'policy':13} {'src':>6} "
          + " ".join(f"{name:>20}" for name, *_ in _SUMMARY))
    for (workload, n, gws, policy, src), group in cells.items():
        parts = []
        for _, key, scale, digits in _SUMMARY:
            values = [g[key] * scale for g in group]
            parts.append(f"{statistics.fmean(values):.{digits}f} [{min(values):.{digits}f}, "
                         f"{max(values):.{digits}f}]")
        print(f"{workload:9} {n:>4} {gws:>2} {policy:13} {src:>6} " + " ".join(f"{p:>20}" for p in parts))


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    params = SimParams(
        slots=args.slots,
        cache_blocks=args.cache_blocks,
        block_chars=args.block_chars,
        feedback=not args.no_feedback,
    )
    t0 = time.perf_counter()
    print(
        f"model: {params.slots} slots/replica, cache {params.cache_blocks} blocks x "
        f"{params.block_chars} chars (~{params.cache_blocks * params.block_chars // 4} tokens), "
        f"prefill {params.prefill_s_per_token * 1e3:.1f} ms/token uncached, decode "
        f"{params.decode_s_per_token * 1e3:.0f} ms/token, arrivals for {args.util:.0%} no-cache "
        f"load, feedback={'on' if params.feedback else 'off'}; router from {Path(inferplane.__file__).parent}; "
        f"load(1m)={os.getloadavg()[0]:.2f}", flush=True
    )
    rows: list[dict] = []
    if args.compare_src:
        with tempfile.NamedTemporaryFile(suffix=".jsonl") as out:
            argv_before = [a for a in (argv if argv is not None else sys.argv[1:])]
            i = argv_before.index("--compare-src")
            del argv_before[i:i + 2]
            env = {**os.environ, "PYTHONPATH": os.path.abspath(args.compare_src)}
            print(f"before: the router from {args.compare_src} (a subprocess), same seeds")
            subprocess.run([sys.executable, __file__, *argv_before, "--json", out.name, "--label", "before"],
                           env=env, check=True)
            rows += [json.loads(line) for line in Path(out.name).read_text().splitlines()]
    _header()
    _run_all(args, params, args.label, rows)
    if args.json:
        Path(args.json).write_text("".join(json.dumps(r) + "\n" for r in rows))
    _summary(rows)
    print(f"total {time.perf_counter() - t0:.1f}s; load(1m)={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
