"""CPU cost of one routing decision per policy (Router.pick + feedback), in microseconds.

The gateway-level comparison (benchmarks/gateway_overhead.py --replicas 2 1000 --policy ...)
includes syscalls and machine noise; this isolates what routing adds per request: building
the RouteInfo from the request as the gateway does, ``pick``, acquire/release, and the
feedback calls the proxy makes.

    python benchmarks/routing_overhead.py [--replicas 2 32 1000] [--prompt-chars 100 4000 65536]
        [--compare-src PATH]

With --compare-src PATH the same measurement also runs in a subprocess importing inferplane
from PATH (e.g. an unpacked `git archive` of the base commit's src/), cell by cell in turn,
so before and after are measured side by side.
"""

from __future__ import annotations

import argparse
import os
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


def _info_factory():
    """Builds a RouteInfo from a parsed body the way this tree's gateway does."""
    try:
        from inferplane.routing.prefix import PromptHashes  # noqa: F401  (the body-bytes API)
    except ImportError:  # the earlier API: a callable returning the rendered prompt text
        from inferplane.gateway.app import _prompt_text

        return lambda data, body: RouteInfo("m", data["user"], lambda: _prompt_text(data))
    return lambda data, body: RouteInfo("m", data["user"], body)


def cost_us(policy: str, replicas: int, prompt_chars: int, budget_s: float = 0.6) -> float:
    cfg = parse_config({"deployments": [{"name": "m", "replicas": 0, "endpoints": [{"url": "http://x"}],
                                         "policy": policy}]})
    reg = EndpointRegistry()
    for i in range(replicas):
        ep = Endpoint(id=f"e{i}", deployment="m", runtime="openai", url=f"http://x{i}", dialect=OPENAI_DIALECT,
                      capacity=4)
        reg.add(ep)
        reg.set_ready(ep, True)
    router = Router(reg, cfg.deployments)
    make_info = _info_factory()
    filler = "lorem ipsum dolor sit amet " * (prompt_chars // 27 + 1)
    systems = [f"system prompt {g}: {filler}"[:prompt_chars] for g in range(GROUPS)]
    bodies: list[tuple[dict, bytes]] = []
    for i in range(64):
        data = {"model": "m", "user": f"u{i % 50}", "messages": [
            {"role": "system", "content": systems[i % GROUPS]}, {"role": "user", "content": f"question {i}"}]}
        raw = orjson.dumps(data)
        bodies.append((orjson.loads(raw), raw))  # the gateway has parsed the body already

    def one(i: int) -> None:
        data, body = bodies[i % 64]
        info = make_info(data, body)
        choice = router.pick(info, set())
        release = reg.acquire(choice.endpoint)
        router.succeeded(choice)
        # the runtime reports what the index predicted (the steady state of a right estimate)
        router.observed(choice, info, (choice.predicted_cached_blocks or 0) * 64)
        release()

    for i in range(200):  # warm the index and the caches
        one(i)
    n = 0
    t0 = time.process_time()  # CPU time: what a loaded box steals from the wall clock is not ours
    while True:
        for _ in range(100):
            one(n)
            n += 1
        elapsed = time.process_time() - t0
        if elapsed > budget_s:
            return elapsed / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, nargs="+", default=[2, 32, 1000])
    ap.add_argument("--prompt-chars", type=int, nargs="+", default=[100, 4000, 65536])
    ap.add_argument("--policies", nargs="+", default=list(POLICY_NAMES))
    ap.add_argument("--compare-src", help="another source tree to measure alongside (PYTHONPATH)")
    ap.add_argument("--cell", nargs=3, metavar=("POLICY", "REPLICAS", "CHARS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cell:
        print(f"{cost_us(args.cell[0], int(args.cell[1]), int(args.cell[2])):.2f}")
        return 0
    cols = [(r, c) for c in args.prompt_chars for r in args.replicas]
    print(f"load(1m)={os.getloadavg()[0]:.2f}; us CPU per decision (RouteInfo + pick + acquire/release + feedback)")
    print(f"{'policy':<13} {'src':>7} " + " ".join(f"{f'{r}rep/{c}ch':>14}" for r, c in cols))
    for policy in args.policies:
        rows: dict[str, list[float]] = {"this": []}
        if args.compare_src:
            rows = {"compare": [], "this": []}
        for r, c in cols:
            if args.compare_src:
                env = {**os.environ, "PYTHONPATH": os.path.abspath(args.compare_src)}
                out = subprocess.run([sys.executable, __file__, "--cell", policy, str(r), str(c)], env=env,
                                     capture_output=True, text=True, check=True).stdout
                rows["compare"].append(float(out))
            rows["this"].append(cost_us(policy, r, c))
        for label, cells in rows.items():
            print(f"{policy:<13} {label:>7} " + " ".join(f"{v:>12.1f}us" for v in cells), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
