"""Routing-policy simulator: prefix-cache hit rate, TTFT and balance per policy.

Replays (1) ShareGPT multi-turn conversations (each turn's prompt = the whole history) and
(2) a shared-system-prompt workload (G groups x long system prompt x short questions)
against N simulated replicas with a prefix-cache cost model (see
``routing_sim/sim_cluster.py``), routed by the gateway's own registry, router and policies
(the same objects `inferplane serve` builds), whose CPU time per decision is measured and
printed (``us/dec``): the trade-off between cache locality and routing cost as the fleet
grows. Arrivals are Poisson at a rate that would load the cluster to ``--util`` with no
cache hits.

    python benchmarks/routing_sim.py                                   # 16..1,000 replicas
    python benchmarks/routing_sim.py --replicas 16 --requests-per-replica 200
    python benchmarks/routing_sim.py --replicas 16 --gateways 1,2,4 --policies prefix   # scale-out cost
    PYTHONPATH=/path/to/other/src python benchmarks/routing_sim.py     # another tree's router

Prints numbers only; nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sys
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
from sim_workloads import SharedPromptSource, ShareGPTSource, load_sharegpt  # noqa: E402

from inferplane.routing.policies import POLICY_NAMES  # noqa: E402


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = SimParams()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replicas", default="16,64,256,1000", help="comma-separated replica counts")
    p.add_argument("--policies", default=",".join(POLICY_NAMES))
    p.add_argument("--workloads", default="sharegpt,shared")
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
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def _fmt(stats: RunStats) -> str:
    pred = "-" if stats.predicted_hit_rate is None else f"{100 * stats.predicted_hit_rate:5.1f}"
    return (
        f"{100 * stats.hit_rate:6.1f} {pred:>6} {1000 * stats.ttft_p50_s:8.0f} "
        f"{1000 * stats.ttft_p99_s:8.0f} {stats.max_over_mean:8.2f} {stats.cv:6.3f} "
        f"{stats.decision_us:7.1f}"
    )


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    params = SimParams(
        slots=args.slots,
        cache_blocks=args.cache_blocks,
        block_chars=args.block_chars,
        feedback=not args.no_feedback,
    )
    replica_counts = [int(x) for x in args.replicas.split(",")]
    policies = args.policies.split(",")
    gateway_counts = [int(x) for x in args.gateways.split(",")]
    t0 = time.perf_counter()
    convs = []
    if "sharegpt" in args.workloads:
        convs = load_sharegpt(
            max_conversations=args.conversations,
            block_chars=params.block_chars,
            chars_per_token=params.chars_per_token,
            max_prompt_chars=32_000,
            max_output_tokens=512,
        )
        turns = sum(len(c.turns) for c in convs)
        print(
            f"ShareGPT: {len(convs)} conversations, {turns} turns ({time.perf_counter() - t0:.1f}s)"
        )
    print(
        f"model: {params.slots} slots/replica, cache {params.cache_blocks} blocks x "
        f"{params.block_chars} chars (~{params.cache_blocks * params.block_chars // 4} tokens), "
        f"prefill {params.prefill_s_per_token * 1e3:.1f} ms/token uncached, decode "
        f"{params.decode_s_per_token * 1e3:.0f} ms/token, arrivals for {args.util:.0%} no-cache "
        f"load, feedback={'on' if params.feedback else 'off'}; router from {Path(inferplane.__file__).parent}; "
        f"load(1m)={os.getloadavg()[0]:.2f}"
    )
    header = (
        f"{'workload':9} {'N':>3} {'gw':>2} {'policy':13} {'reqs':>5} {'hit%':>6} {'pred%':>6} "
        f"{'ttft50ms':>8} {'ttft99ms':>8} {'max/mean':>8} {'cv':>6} {'us/dec':>7}"
    )
    print(header)
    print("-" * len(header))
    for workload in args.workloads.split(","):
        for n in replica_counts:
            requests = min(args.max_requests, max(args.min_requests, args.requests_per_replica * n))
            for name, gws in [(p, g) for p in policies for g in gateway_counts]:
                rng = random.Random(args.seed)
                if workload == "sharegpt":
                    source: ShareGPTSource | SharedPromptSource = ShareGPTSource(
                        convs, rng, think_s=args.think_s
                    )
                    mean_in, mean_out = ShareGPTSource.mean_turn(convs)
                else:
                    source = SharedPromptSource(
                        rng,
                        groups=args.groups,
                        system_chars=args.system_chars,
                        block_chars=params.block_chars,
                        chars_per_token=params.chars_per_token,
                        zipf_s=args.zipf,
                    )
                    mean_in, mean_out = source.mean_turn()
                service_s = (
                    mean_in * params.prefill_s_per_token + mean_out * params.decode_s_per_token
                )
                rate = args.util * n * params.slots / service_s
                options: dict[str, object] = {}
                if name == "power_of_two":
                    options["seed"] = args.seed
                if name == "prefix":
                    options["max_blocks_per_endpoint"] = args.index_blocks or params.cache_blocks
                    options.update({k: float(v) for k, v in (x.split("=", 1) for x in args.prefix_option)})
                stats = simulate(
                    name,
                    source,
                    replicas=n,
                    rate_per_s=rate,
                    requests=requests,
                    params=dataclasses.replace(params, gateways=gws, scrape_s=args.scrape_s),
                    seed=args.seed,
                    policy_options=options,
                )
                print(f"{workload:9} {n:>3} {gws:>2} {name:13} {stats.requests:>5} {_fmt(stats)}")
    print(f"total {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
