"""CPU cost of routing one request per policy (Router.pick + feedback), in microseconds.

The gateway-level comparison (benchmarks/gateway_overhead.py --replicas 2 1000 --policy ...)
includes syscalls and machine noise; this isolates what routing adds per request: building
the RouteInfo from the request as the gateway does, ``pick``, acquire/release, and the
feedback calls the proxy makes, with ``--concurrency`` requests outstanding (each one
finishes and reports its cached tokens that many requests later), over prompts of a shared
system part (8 groups) and a question of its own (1-2 blocks, so every prompt is new).

    python benchmarks/routing_overhead.py [--replicas 2 16 64 256 1000] [--prompt-chars 4000 65536]
        [--policies ...] [--concurrency 32] [--repeat 3] [--compare-src PATH]

One subprocess per policy x prompt size builds a fleet of every size and routes through them
in turn, 50 requests at a time, until each has used 0.5 s of CPU: whatever else loads the
machine weighs on every fleet size alike, so the ratio of the largest to the smallest (the
last columns; the fleet-size target is within 1.2x) is the least noisy number here. Each
subprocess runs ``--repeat`` times and the least CPU per cell is kept (other load only ever
adds). With --compare-src PATH the same subprocesses also run importing inferplane from PATH
(e.g. an unpacked `git archive` of the base commit's src/), alternating with this tree's,
so before and after are measured side by side.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import subprocess
import sys
import time

import orjson

from inferplane.config.models import parse_config
from inferplane.routing.policies import POLICY_NAMES
from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.routing.router import RouteInfo, Router
from inferplane.runtimes.base import OPENAI_DIALECT

GROUPS = 8
BODIES = 512
_SLOW_BASE_BUILD = 300
_WORDS = ("river", "stone", "light", "paper", "garden", "window", "signal", "copper", "meadow", "harbour")


def _info_factory():
    """Builds a RouteInfo from a parsed body the way this tree's gateway does."""
    try:
        from inferplane.routing.prefix import prompt_view  # noqa: F401  (the body-bytes API)
    except ImportError:  # the earlier API: a callable returning the rendered prompt text
        from inferplane.gateway.app import _prompt_text

        return lambda data, body: RouteInfo("m", data["user"], lambda: _prompt_text(data))
    return lambda data, body: RouteInfo("m", data["user"], body)


class Fleet:
    """One deployment of ``replicas`` endpoints behind this tree's router, fed as the proxy
    feeds it, with up to ``concurrency`` requests outstanding."""

    def __init__(self, policy: str, replicas: int, prompt_chars: int, concurrency: int) -> None:
        cfg = parse_config({"deployments": [{"name": "m", "replicas": 0, "endpoints": [{"url": "http://x"}],
                                             "policy": policy}]})
        self.reg = reg = EndpointRegistry()
        for i in range(replicas):
            ep = Endpoint(id=f"e{i}", deployment="m", runtime="openai", url=f"http://x{i}",
                          dialect=OPENAI_DIALECT, capacity=4)
            reg.add(ep)
            reg.set_ready(ep, True)
        self.router = Router(reg, cfg.deployments)
        self.make_info = _info_factory()
        rng = random.Random(0)
        filler = "lorem ipsum dolor sit amet " * (prompt_chars // 27 + 1)
        systems = [f"system prompt {g}: {filler}"[:prompt_chars] for g in range(GROUPS)]
        self.bodies: list[tuple[dict, bytes]] = []
        for i in range(BODIES):
            question = f"question {i}: " + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(40, 90)))
            data = {"model": "m", "user": f"u{i % 50}", "messages": [
                {"role": "system", "content": systems[i % GROUPS]}, {"role": "user", "content": question}]}
            raw = orjson.dumps(data)
            self.bodies.append((orjson.loads(raw), raw))  # the gateway has parsed the body already
        self.concurrency = concurrency
        self.outstanding: collections.deque = collections.deque()
        self.n = 0

    def run(self, count: int) -> None:
        router, reg, bodies, outstanding = self.router, self.reg, self.bodies, self.outstanding
        make_info = self.make_info
        for _ in range(count):
            data, body = bodies[self.n % BODIES]
            self.n += 1
            info = make_info(data, body)
            choice = router.pick(info, set())
            release = reg.acquire(choice.endpoint)
            router.succeeded(choice)
            outstanding.append((choice, info, release))
            if len(outstanding) > self.concurrency:
                choice, info, release = outstanding.popleft()
                # the runtime reports what the index predicted (the steady state of a right estimate)
                router.observed(choice, info, (choice.predicted_cached_blocks or 0) * 64)
                release()


def cost_us(policy: str, replicas: list[int], prompt_chars: int, concurrency: int = 32,
            budget_s: float = 0.5) -> dict[int, float]:
    """CPU microseconds per request at each fleet size, the fleets run in turn."""
    fleets = {r: Fleet(policy, r, prompt_chars, concurrency) for r in replicas}
    for f in fleets.values():
        f.run(BODIES)  # warm the index and the caches
    cpu = dict.fromkeys(fleets, 0.0)
    done = dict.fromkeys(fleets, 0)
    clock = time.process_time  # CPU time: what a loaded box steals from the wall clock is not ours
    while min(cpu.values()) < budget_s:
        for r, f in fleets.items():
            t0 = clock()
            f.run(50)
            cpu[r] += clock() - t0
            done[r] += 50
    return {r: cpu[r] / done[r] * 1e6 for r in fleets}


def _row(policy: str, replicas: list[int], chars: int, concurrency: int, src: str | None) -> dict[int, float]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.path.abspath(src)
    out = subprocess.run([sys.executable, __file__, "--row", policy, str(chars), str(concurrency),
                          ",".join(map(str, replicas))], env=env, capture_output=True, text=True, check=True).stdout
    return {int(k): v for k, v in json.loads(out).items()}


def _count(policy: str, replicas: int, chars: int, concurrency: int, requests: int) -> None:
    """Route ``requests`` requests through one warmed fleet (run under callgrind by ``_instructions``)."""
    fleet = Fleet(policy, replicas, chars, concurrency)
    fleet.run(BODIES)
    fleet.run(requests)


def _instructions(policy: str, replicas: int, chars: int, concurrency: int, requests: int,
                  src: str | None) -> float:
    """Thousands of CPU instructions per request routed: one run under valgrind's callgrind with
    ``requests`` requests and one with twice as many, subtracted (start-up, the fleet's
    construction and the warm-up cancel out). Deterministic: other load changes nothing."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if src is not None:
        env["PYTHONPATH"] = os.path.abspath(src)
    counts = []
    for n in (requests, 2 * requests):
        argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
                "--count", policy, str(chars), str(concurrency), str(replicas), str(n)]
        err = subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stderr
        counts.append(int(err.rsplit("Collected :", 1)[1].split()[0]))
    return (counts[1] - counts[0]) / requests / 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, nargs="+", default=[2, 16, 64, 256, 1000])
    ap.add_argument("--prompt-chars", type=int, nargs="+", default=[4000, 65536])
    ap.add_argument("--policies", nargs="+", default=list(POLICY_NAMES))
    ap.add_argument("--concurrency", type=int, default=32, help="requests outstanding at a time")
    ap.add_argument("--repeat", type=int, default=3, help="runs per row; the least CPU per cell is kept")
    ap.add_argument("--compare-src", help="another source tree to measure alongside (PYTHONPATH)")
    ap.add_argument("--instructions", type=int, default=0, metavar="N",
                    help="count instructions per request under valgrind (runs of N and 2N requests) instead "
                    "of timing; base-tree cells whose fleet takes too long to build are skipped")
    ap.add_argument("--row", nargs=4, metavar=("POLICY", "CHARS", "CONCURRENCY", "REPLICAS"), help=argparse.SUPPRESS)
    ap.add_argument("--count", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.row:
        policy, chars, conc, reps = args.row
        print(json.dumps(cost_us(policy, [int(r) for r in reps.split(",")], int(chars), int(conc))))
        return 0
    if args.count:
        policy, chars, conc, reps, n = args.count
        _count(policy, int(reps), int(chars), int(conc), int(n))
        return 0
    if args.instructions:
        return _print_instructions(args)
    cols = [(r, c) for c in args.prompt_chars for r in args.replicas]
    srcs: list[tuple[str, str | None]] = [("this", None)]
    if args.compare_src:
        srcs.insert(0, ("before", args.compare_src))
    lo, hi = min(args.replicas), max(args.replicas)
    print(f"load(1m)={os.getloadavg()[0]:.2f}; us CPU per request routed (RouteInfo + pick + acquire/release + "
          f"feedback), {args.concurrency} outstanding, least of {args.repeat} runs; {hi}/{lo}: ratio of {hi} "
          f"replicas to {lo}")
    print(f"{'policy':<13} {'src':>6} " + " ".join(f"{f'{r}rep/{c}ch':>14}" for r, c in cols)
          + "".join(f" {f'{hi}/{lo} {c}ch':>13}" for c in args.prompt_chars), flush=True)
    for policy in args.policies:
        best: dict[tuple[str, int, int], float] = {}
        for rep in range(args.repeat):
            for c in args.prompt_chars:
                for label, src in (srcs if rep % 2 == 0 else srcs[::-1]):  # alternate who goes first
                    for r, v in _row(policy, args.replicas, c, args.concurrency, src).items():
                        best[(label, r, c)] = min(best.get((label, r, c), v), v)
        for label, _ in srcs:
            cells = " ".join(f"{best[(label, r, c)]:>12.1f}us" for r, c in cols)
            ratios = "".join(f" {best[(label, hi, c)] / best[(label, lo, c)]:>12.2f}x" for c in args.prompt_chars)
            print(f"{policy:<13} {label:>6} {cells}{ratios}", flush=True)
    print(f"load(1m) after={os.getloadavg()[0]:.2f}")
    return 0


def _print_instructions(args: argparse.Namespace) -> int:
    if not shutil.which("valgrind"):
        print("valgrind not found: apt-get install valgrind", file=sys.stderr)
        return 2
    cols = [(r, c) for c in args.prompt_chars for r in args.replicas]
    srcs: list[tuple[str, str | None]] = [("this", None)]
    if args.compare_src:
        srcs.insert(0, ("before", args.compare_src))
    lo, hi = min(args.replicas), max(args.replicas)
    print(f"thousands of instructions per request routed (valgrind callgrind, runs of {args.instructions} and "
          f"{2 * args.instructions} requests subtracted), {args.concurrency} outstanding; {hi}/{lo}: ratio")
    print(f"{'policy':<13} {'src':>6} " + " ".join(f"{f'{r}rep/{c}ch':>14}" for r, c in cols)
          + "".join(f" {f'{hi}/{lo} {c}ch':>13}" for c in args.prompt_chars), flush=True)
    for policy in args.policies:
        for label, src in srcs:
            got: dict[tuple[int, int], float] = {}
            for r, c in cols:
                if src is not None and policy == "prefix" and r > _SLOW_BASE_BUILD:
                    continue  # the base tree re-sorted its home ring per endpoint: minutes under valgrind
                got[(r, c)] = _instructions(policy, r, c, args.concurrency, args.instructions, src)
            cells = " ".join(f"{got[k]:>12.1f}k " if k in got else f"{'-':>14}" for k in cols)
            ratios = "".join(f" {got[(hi, c)] / got[(lo, c)]:>12.2f}x" if (hi, c) in got and (lo, c) in got
                             else f" {'-':>13}" for c in args.prompt_chars)
            print(f"{policy:<13} {label:>6} {cells}{ratios}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
