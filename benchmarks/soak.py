"""Soak: the gateway under steady load against a fake upstream, sampling its RSS and open fds.

Starts the bench fake server (``inferplane.bench.fake_server``: plain and SSE answers,
no model), `inferplane serve` in front of it (runtime 'openai'), then for ``--duration``
seconds runs wrk (plain requests, bounded connections) plus Python stream clients, and
every ``--sample-every`` s reads the gateway's VmRSS and its open file descriptors.
Prints requests sent / succeeded / failed, how streams ended, and RSS and fd growth
(after the warm-up sample, so allocator and cache warm-up is not counted as growth).

    python benchmarks/soak.py [--duration 600] [--connections 16] [--streams 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fault_load import Load, Serve, open_fds, rss_kib

BODY = '{"model":"m","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
LUA = f"""wrk.method = "POST"
wrk.body = '{BODY}'
wrk.headers["Content-Type"] = "application/json"
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--streams", type=int, default=2)
    ap.add_argument("--sample-every", type=float, default=5)
    ap.add_argument("--warmup", type=float, default=20, help="seconds before the baseline sample")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    lua = tmp / "post.lua"
    lua.write_text(LUA)
    fake = subprocess.Popen([sys.executable, "-m", "inferplane.bench.fake_server", "--port", "0", "--ttft-s", "0.005",
                             "--itl-s", "0.002", "--output-len", "16"], stdout=subprocess.PIPE, text=True)
    sp = None
    wrk = None
    load = None
    try:
        assert fake.stdout is not None
        upstream = fake.stdout.readline().split()[1]
        (tmp / "deploy.yaml").write_text(
            "gateway:\n  scrape_interval_s: 5\ndeployments:\n  - name: m\n    runtime: openai\n    replicas: 0\n"
            f"    endpoints:\n      - url: {upstream}\n")
        sp = Serve(["--config", str(tmp / "deploy.yaml")], tmp)
        pid = sp.proc.pid
        print(f"soak {args.duration:.0f}s: wrk {args.connections} connections + {args.streams} stream clients; "
              f"cores={os.cpu_count()} load(1m) before={os.getloadavg()[0]:.2f}")
        print(f"gateway at start: RSS {rss_kib(pid) / 1024:.1f} MiB, fds {open_fds(pid)}")
        wrk = subprocess.Popen(["wrk", "-t1", f"-c{args.connections}", f"-d{int(args.duration)}s", "-s", str(lua),
                                sp.url + "/v1/chat/completions"], stdout=subprocess.PIPE, text=True)
        load = Load(sp.url, "m", plain=0, streams=args.streams)
        load.start()
        t0 = time.monotonic()
        samples: list[tuple[float, int, int]] = []
        base = None
        while wrk.poll() is None:
            time.sleep(args.sample_every)
            s = (time.monotonic() - t0, rss_kib(pid), open_fds(pid))
            samples.append(s)
            if base is None and s[0] >= args.warmup:
                base = s
        load.stop()
        out = wrk.stdout.read() if wrk.stdout else ""
        n = int(re.search(r"(\d+) requests in", out).group(1))
        non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
        sock = re.search(r"Socket errors: (.*)", out)
        print(f"plain (wrk): requests {n}, non-2xx {non2xx}, socket errors: {sock.group(1) if sock else 'none'}")
        print(load.summary())
        time.sleep(2)  # let closed connections go
        end = (time.monotonic() - t0, rss_kib(pid), open_fds(pid))
        base = base or samples[0]
        peak = max(s[1] for s in samples)
        print(f"RSS MiB: after warm-up (t={base[0]:.0f}s) {base[1] / 1024:.1f}, peak {peak / 1024:.1f}, "
              f"end {end[1] / 1024:.1f} -> growth {(end[1] - base[1]) / 1024:+.1f} MiB")
        print(f"open fds: after warm-up {base[2]}, max {max(s[2] for s in samples)}, end (load stopped) {end[2]} "
              f"-> growth {end[2] - base[2]:+d}")
        step = max(1, len(samples) // 10)
        print("samples (s, RSS MiB, fds): " + "  ".join(f"{t:.0f}:{r / 1024:.1f}:{f}" for t, r, f in samples[::step]))
        print(f"load(1m) after={os.getloadavg()[0]:.2f}")
    finally:
        if load is not None:
            load.stop()
        if wrk is not None and wrk.poll() is None:
            wrk.terminate()
            wrk.wait(10)
        if sp is not None:
            sp.stop()
        fake.terminate()
        fake.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
