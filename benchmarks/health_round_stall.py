"""What the health-check round costs the requests being served, at fleet size.

Starts a null OpenAI upstream (benchmarks/null_upstream.py) and a gateway with --replicas
existing endpoints all pointing at it (round robin), checked every --scrape-interval-s; then
sends one request at a time (one keep-alive connection, a --gap-ms pause between requests)
for --duration seconds and prints the latency percentiles and the slowest requests: a
request that arrives while the gateway's event loop runs a burst of checks waits for it.

    python benchmarks/health_round_stall.py [--replicas 1000] [--scrape-interval-s 2]
        [--duration 10] [--rounds 2] [--gap-ms 5] [--compare-src PATH]

--compare-src PATH also runs the gateway from another source tree (PYTHONPATH=PATH, e.g. an
unpacked `git archive <commit> src`), alternating with this one in the same rounds.
The upstream serves the probes as well as the requests (one process for every endpoint), so
a burst of probes also delays it; with real fleets each endpoint is its own server.
Everything shares this machine's cores: compare within one run; the load is printed.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import gateway_overhead  # noqa: E402
from _procs import free_port, stop, wait_ok  # noqa: E402

BODY = b'{"model":"m","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'


def start_gateway(tmp: Path, upstream: str, replicas: int, scrape_s: float, src: str | None) -> tuple[subprocess.Popen, int]:
    """gateway_overhead.py's gateway (round robin over ``replicas`` endpoints), and its port."""
    proc, url = gateway_overhead.start_gateway(tmp, upstream, policy="round_robin", replicas=replicas,
                                               scrape_s=scrape_s, src=src)
    return proc, int(url.rsplit(":", 1)[1])


def sequential(port: int, duration_s: float, gap_s: float) -> list[float]:
    """Latency (ms) of each request, one at a time for ``duration_s``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out: list[float] = []
    end = time.perf_counter() + duration_s
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", body=BODY, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        out.append((time.perf_counter() - t0) * 1e3)
        if resp.status != 200:
            raise RuntimeError(f"request answered {resp.status}")
        time.sleep(gap_s)
    conn.close()
    return out


def summary(lat: list[float]) -> str:
    q = statistics.quantiles(lat, n=1000)
    slow = sum(1 for x in lat if x > 20)
    return (f"n={len(lat)} p50={q[499]:.2f} p99={q[989]:.2f} p99.9={q[998]:.2f} max={max(lat):.1f} ms; "
            f">20 ms: {slow}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--replicas", type=int, default=1000)
    ap.add_argument("--scrape-interval-s", type=float, default=2.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--gap-ms", type=float, default=5.0)
    ap.add_argument("--warmup-s", type=float, default=4.0, help="after /ready, before measuring (the first round)")
    ap.add_argument("--compare-src", help="a second source tree to run the gateway from, alternating")
    args = ap.parse_args()
    trees = [("this", None)] + ([("compare", args.compare_src)] if args.compare_src else [])
    procs: list[subprocess.Popen] = []
    results: dict[str, list[float]] = {label: [] for label, _ in trees}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        up_port = free_port()
        procs.append(subprocess.Popen([sys.executable, str(HERE / "null_upstream.py"), str(up_port)]))
        try:
            wait_ok(f"http://127.0.0.1:{up_port}/v1/models")
            for rnd in range(args.rounds):
                for label, src in (trees if rnd % 2 == 0 else trees[::-1]):
                    gw, port = start_gateway(tmp, f"http://127.0.0.1:{up_port}", args.replicas,
                                             args.scrape_interval_s, src)
                    try:
                        time.sleep(args.warmup_s)
                        load = os.getloadavg()[0]
                        lat = sequential(port, args.duration, args.gap_ms / 1e3)
                    finally:
                        stop([gw])
                    results[label] += lat
                    print(f"round {rnd} {label:8s} load(1m)={load:.2f}  {summary(lat)}", flush=True)
        finally:
            stop(procs)
    print(f"-- {args.replicas} endpoints, scrape every {args.scrape_interval_s} s, all rounds:")
    for label, lat in results.items():
        print(f"{label:8s} {summary(lat)}")


if __name__ == "__main__":
    main()
