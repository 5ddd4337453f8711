"""What the dashboard's rolling-window observer costs per request, and its memory at steady state.

Feeds ``RecentRequests.finished`` (the only event it does work on) with realistic records -
streamed chat with usage and TTFT, a few deployments, 3 % errors, times advancing like
real traffic - and times it in-process: ns per request (best of --rounds), then the
memory its rings hold after --requests requests (tracemalloc), and the cost of one
``snapshot`` (what each poll of the dashboard's feed pays, off the request path).

    python benchmarks/recent_observer.py [--requests 200000] [--rounds 5] [--deployments 3]
        [--rate 500]

Compare with ``benchmarks/gateway_overhead.py``'s gateway CPU per request for scale; the
box is shared, so say its load (``uptime``) next to the numbers.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import time
import tracemalloc

from inferplane.observability.observer import Outcome, RequestRecord, Usage
from inferplane.observability.recent import RecentRequests
from inferplane.protocol.routes import Route, SurfaceName


def _workload(n: int, deployments: int, rate: float, seed: int = 1) -> list[tuple[RequestRecord, Outcome]]:
    rng = random.Random(seed)
    names = [f"model-{i}" for i in range(deployments)]
    out = []
    t = 1000.0
    for i in range(n):
        t += rng.expovariate(rate)
        e2e = rng.uniform(0.2, 3.0)
        rec = RequestRecord(f"r{i}", SurfaceName.OPENAI, Route.CHAT, t - e2e, 0.0, "/v1/chat/completions",
                            model=rng.choice(names), stream=True)
        if rng.random() < 0.03:
            outcome = Outcome(rng.choice((429, 502, 504)), t)
        else:
            outcome = Outcome(200, t, usage=Usage(rng.randint(10, 2000), rng.randint(2, 400)),
                              ttft_s=rng.uniform(0.02, 0.5))
        out.append((rec, outcome))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--deployments", type=int, default=3)
    ap.add_argument("--rate", type=float, default=500.0, help="requests/s of the simulated traffic")
    args = ap.parse_args()
    work = _workload(args.requests, args.deployments, args.rate)
    span_s = work[-1][1].t_end - work[0][1].t_end
    print(f"{args.requests} requests over {span_s:.0f} s of simulated time ({args.rate:g}/s), "
          f"{args.deployments} deployments; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

    best = float("inf")
    for _ in range(args.rounds):
        rr = RecentRequests()
        finished = rr.finished
        gc.disable()
        t0 = time.perf_counter_ns()
        for rec, outcome in work:
            finished(rec, outcome)
        dt = time.perf_counter_ns() - t0
        gc.enable()
        best = min(best, dt / len(work))
    print(f"finished(): {best:.0f} ns per request (best of {args.rounds} rounds)")

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    rr = RecentRequests()
    for rec, outcome in work:
        rr.finished(rec, outcome)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    buckets = sum(len(r) for r in rr._rings.values())
    print(f"memory held after {args.requests} requests: {held / 1e6:.2f} MB in {buckets} buckets "
          f"(window {rr.window_s:g} s, {rr.bucket_s:g} s buckets, latencies in 4 % bins)")

    now = work[-1][1].t_end
    t0 = time.perf_counter()
    rr.snapshot(now)
    rr.summary_all(now)
    first = time.perf_counter() - t0
    times = []
    for i in range(args.rounds):
        t0 = time.perf_counter()
        rr.snapshot(now + i * 0.3)  # polls within one bucket, as the page does every 1.5 s
        rr.summary_all(now + i * 0.3)
        times.append(time.perf_counter() - t0)
    print(f"one read of every window (snapshot + summary_all): first {first * 1e3:.1f} ms, "
          f"then {statistics.median(times) * 1e3:.1f} ms (median of {args.rounds})")


if __name__ == "__main__":
    main()
