"""CPU cost of one routing decision per policy (Router.pick + feedback), in microseconds.

The gateway-level comparison (benchmarks/gateway_overhead.py --replicas 2 --policy ...) is
dominated by syscalls and machine noise; this isolates what the policy adds per request.

    python benchmarks/routing_overhead.py [--replicas 2 8 32] [--prompt-chars 100 4000]
"""

from __future__ import annotations

import argparse
import timeit

from inferplane.config.models import parse_config
from inferplane.gateway.app import _prompt_text
from inferplane.routing.policies import POLICY_NAMES
from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.routing.router import RouteInfo, Router
from inferplane.runtimes.base import OPENAI_DIALECT


def cost_us(policy: str, replicas: int, prompt_chars: int, n: int = 5000) -> float:
    cfg = parse_config({"deployments": [{"name": "m", "replicas": 0, "endpoints": [{"url": "http://x"}],
                                         "policy": policy}]})
    reg = EndpointRegistry()
    for i in range(replicas):
        ep = Endpoint(id=f"e{i}", deployment="m", runtime="openai", url=f"http://x{i}", dialect=OPENAI_DIALECT,
                      capacity=4)
        reg.add(ep)
        reg.set_ready(ep, True)
    router = Router(reg, cfg.deployments)
    systems = [f"system prompt {g}: " + "lorem ipsum dolor sit amet " * (prompt_chars // 27) for g in range(8)]
    i = 0

    def one() -> None:
        nonlocal i
        i += 1
        data = {"model": "m", "user": f"u{i % 50}", "messages": [
            {"role": "system", "content": systems[i % 8]}, {"role": "user", "content": f"question {i}"}]}
        info = RouteInfo("m", data["user"], lambda: _prompt_text(data))
        choice = router.pick(info, set())
        assert choice is not None
        router.succeeded(choice)
        router.observed(choice, info, 0)

    return timeit.timeit(one, number=n) / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, nargs="+", default=[2, 8, 32])
    ap.add_argument("--prompt-chars", type=int, nargs="+", default=[100, 4000])
    args = ap.parse_args()
    print(f"{'policy':<13} " + " ".join(f"{f'{r} rep/{c} ch':>14}" for r in args.replicas for c in args.prompt_chars))
    for policy in POLICY_NAMES:
        cells = [cost_us(policy, r, c) for r in args.replicas for c in args.prompt_chars]
        print(f"{policy:<13} " + " ".join(f"{v:>12.1f}us" for v in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
