"""Live routing: `prefix` vs `round_robin` over real embedded replicas, shared-prefix workload.

For each policy: starts `inferplane serve` with N replicas of the default model, runs
`inferplane bench --workload shared-prefix` through it, and reads the runtimes' own
prefix-cache counters (llama.cpp's prompt_tokens_cached_total, normalized by the gateway
as inferplane_endpoint_prefix_cache_hits / _queries) before and after.

    python benchmarks/routing_live.py [--replicas 3] [--groups 6] [--system-len 600]
        [--requests 36] [--concurrency 3] [--policies prefix round_robin]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()


def cache_counters(gateway: str) -> tuple[float, float]:
    text = get(gateway + "/metrics").decode()
    hits = sum(float(m) for m in re.findall(r"^inferplane_endpoint_prefix_cache_hits\{.*\} (\S+)$", text, re.M))
    queries = sum(float(m) for m in re.findall(r"^inferplane_endpoint_prefix_cache_queries\{.*\} (\S+)$", text, re.M))
    return hits, queries


def run_policy(policy: str, args: argparse.Namespace, tmp: Path) -> dict:
    port = free_port()
    cfg = tmp / f"{policy}.yaml"
    cfg.write_text(
        f"gateway:\n  port: {port}\n  scrape_interval_s: 1\ndeployments:\n  - name: smollm2\n"
        f"    replicas: {args.replicas}\n    max_concurrent_sequences: 2\n    threads: 1\n    policy: {policy}\n"
        f"    extra_args: [--cache-ram-mib, '{args.cache_ram_mib}']\n")
    proc = subprocess.Popen([sys.executable, "-m", "inferplane", "serve", "--config", str(cfg),
                             "--log-dir", str(tmp)], stderr=subprocess.DEVNULL)
    gateway = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if json.loads(get(gateway + "/ready"))["status"] == "ready":
                    break
            except OSError:
                pass
            time.sleep(0.5)
        time.sleep(1.5)
        h0, q0 = cache_counters(gateway)
        out = tmp / f"bench-{policy}"
        subprocess.run([sys.executable, "-m", "inferplane", "bench", "--url", gateway, "--model", "smollm2",
                        "--workload", "shared-prefix", "--prefix-groups", str(args.groups),
                        "--system-len", str(args.system_len), "--question-len", "24", "--output-len", "16",
                        "--requests", str(args.requests), "--concurrency", str(args.concurrency),
                        "--seed", "11", "--output-dir", str(out), "--no-progress"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2.5)
        h1, q1 = cache_counters(gateway)
        m = json.loads((out / "summary.json").read_text())["runs"][0]["metrics"]
        return {"ttft_p50": m["ttft"]["p50"], "ttft_p99": m["ttft"]["p99"], "rps": m["request_throughput"],
                "failed": m["n_failed"], "hit_rate": (h1 - h0) / (q1 - q0) if q1 > q0 else float("nan"),
                "hits": h1 - h0}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--groups", type=int, default=6)
    ap.add_argument("--system-len", type=int, default=600)
    ap.add_argument("--requests", type=int, default=36)
    ap.add_argument("--concurrency", type=int, default=3)
    ap.add_argument("--policies", nargs="+", default=["prefix", "round_robin"])
    ap.add_argument("--cache-ram-mib", type=int, default=0,
                    help="llama.cpp's host-RAM prompt cache per replica (0: only the slots' own KV, like a "
                         "GPU runtime's bounded cache; llama.cpp's default 8192 holds every prefix anywhere)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="routing-live-"))
    print(f"{args.replicas} replicas x 2 slots x 1 thread, RAM prompt cache {args.cache_ram_mib} MiB; shared-prefix: {args.groups} groups x "
          f"{args.system_len}-token system prompt; {args.requests} requests at concurrency {args.concurrency}; "
          f"load(1m)={os.getloadavg()[0]:.2f}")
    print(f"{'policy':<12} {'TTFT p50':>9} {'TTFT p99':>9} {'req/s':>6} {'cache hit %':>11} {'cached tok':>10} failed")
    for policy in args.policies:
        r = run_policy(policy, args, tmp)
        print(f"{policy:<12} {r['ttft_p50'] * 1e3:>7.0f}ms {r['ttft_p99'] * 1e3:>7.0f}ms {r['rps']:>6.2f} "
              f"{100 * r['hit_rate']:>10.1f}% {r['hits']:>10.0f} {r['failed']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
