"""The embedded runtime through the gateway vs directly against its own port.

Starts `inferplane serve` (default model, --parallel 8), finds the replica's own URL from
/admin/endpoints, then runs `inferplane bench` (synthetic prompts, unique per run) against
the replica directly and through the gateway, alternating, at each concurrency. Prints
aggregate output tok/s and TTFT p50 for both, and the ratios.

    python benchmarks/embedded_through_gateway.py [--concurrency 1 4 8] [--requests 16]
        [--input-len 230] [--output-len 128] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
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


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def bench(url: str, conc: int, args: argparse.Namespace, out: Path, seed: int) -> dict:
    cmd = [sys.executable, "-m", "inferplane", "bench", "--url", url, "--model", "smollm2",
           "--workload", "synthetic", "--input-len", str(args.input_len), "--output-len", str(args.output_len),
           "--requests", str(args.requests), "--concurrency", str(conc), "--warmup", "1",
           "--seed", str(seed), "--output-dir", str(out), "--no-progress"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    m = json.loads((out / "summary.json").read_text())["runs"][0]["metrics"]
    return {"tok_s": m["output_throughput"], "ttft_p50": m["ttft"]["p50"], "ttft_p99": m["ttft"]["p99"],
            "failed": m["n_failed"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--input-len", type=int, default=230)
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="emb-bench-"))
    port = free_port()
    cmd = [sys.executable, "-m", "inferplane", "serve", "--port", str(port), "--parallel", "8",
           "--log-dir", str(tmp)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    gateway = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if get_json(gateway + "/ready")["status"] == "ready":
                    break
            except OSError:
                pass
            time.sleep(0.5)
        direct = get_json(gateway + "/admin/endpoints")["endpoints"][0]["url"]
        print(f"input {args.input_len} tokens, output {args.output_len}, {args.requests} requests per run; "
              f"cores={os.cpu_count()} load(1m)={os.getloadavg()[0]:.2f}")
        print(f"{'conc':>4} {'direct tok/s':>12} {'gw tok/s':>9} {'ratio':>6} {'direct TTFT p50':>15} "
              f"{'gw TTFT p50':>11} {'direct p99':>10} {'gw p99':>7}")
        for i, c in enumerate(args.concurrency):
            d = bench(direct, c, args, tmp / f"d{c}", seed=100 + i)
            g = bench(gateway, c, args, tmp / f"g{c}", seed=200 + i)
            print(f"{c:>4} {d['tok_s']:>12.1f} {g['tok_s']:>9.1f} {g['tok_s'] / d['tok_s']:>6.2f} "
                  f"{d['ttft_p50'] * 1e3:>13.0f}ms {g['ttft_p50'] * 1e3:>9.0f}ms {d['ttft_p99'] * 1e3:>8.0f}ms "
                  f"{g['ttft_p99'] * 1e3:>5.0f}ms" + (f"  FAILED {d['failed']}/{g['failed']}"
                                                      if d["failed"] or g["failed"] else ""))
        print(f"load(1m) after={os.getloadavg()[0]:.2f}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
