"""Gateway overhead: requests/s and latency through `inferplane serve` vs direct to the upstream.

Starts a null OpenAI upstream (benchmarks/null_upstream.py) and a gateway in front of it
(runtime 'openai', one endpoint), then runs wrk (Debian package) against both, alternating,
for each concurrency and round. Prints RPS ratios and the added p50/p99 latency.

    python benchmarks/gateway_overhead.py [--duration 6] [--rounds 2] [--concurrency 1 32]
        [--policy least_load] [--replicas 1] [--vllm-router PATH] [--upstream-model NAME]

With --upstream-model, clients send the deployment name ``client-m`` and the gateway rewrites
the request's ``model`` to NAME (``m`` is the null upstream's name): the rewrite's cost.

With --vllm-router (the Rust router from PyPI `vllm-router`, installed in any venv), the
same upstream is also measured through it in the same rounds, for a like-for-like anchor.

Everything shares this machine's cores: compare ratios within one run, not across runs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).parent
BODY = '{"model":"m","messages":[{"role":"user","content":"Say hello in one short sentence, please."}],"max_tokens":16}'
LUA = """wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ok(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
CPU_PER_REQUEST: list[float] = []
"""Gateway CPU microseconds per request, one entry per gateway run (less noise-sensitive than RPS)."""


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    assert m, text
    return float(m.group(1)) * _UNITS[m.group(2)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, conns: int, duration: int, lua: Path, cpu_pid: int | None = None) -> tuple[float, float, float]:
    """(req/s, p50 ms, p99 ms); with ``cpu_pid``, also prints that process's CPU time per request."""
    cpu0 = cpu_seconds(cpu_pid) if cpu_pid else 0.0
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "-s", str(lua), url],
                         capture_output=True, text=True, check=True).stdout
    if cpu_pid:
        n = int(re.search(r"(\d+) requests in", out).group(1))
        CPU_PER_REQUEST.append((cpu_seconds(cpu_pid) - cpu0) / max(n, 1) * 1e6)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    if "Non-2xx" in out or "Socket errors" in out:
        print("  wrk reported errors:", [ln for ln in out.splitlines() if "Non-2xx" in ln or "Socket" in ln])
    return rps, p50, p99


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--policy", default="least_load")
    ap.add_argument("--replicas", type=int, default=1, help="endpoints in the pool (all the same upstream)")
    ap.add_argument("--vllm-router", help="path of a vllm-router executable to measure alongside")
    ap.add_argument("--upstream-model", help="serve as 'client-m' and rewrite each request's model to this name")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    lua = tmp / "post.lua"
    name = "client-m" if args.upstream_model else "m"
    lua.write_text(LUA.format(body=BODY.replace('"model":"m"', f'"model":"{name}"')))
    up_port, gw_port = free_port(), free_port()
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, str(HERE / "null_upstream.py"), str(up_port)]))
        upstream = f"http://127.0.0.1:{up_port}"
        wait_ok(upstream + "/health")
        endpoints = "\n".join(f"      - url: {upstream}" for _ in range(args.replicas))
        (tmp / "deploy.yaml").write_text(
            f"gateway:\n  port: {gw_port}\n  scrape_interval_s: 5\ndeployments:\n  - name: {name}\n    runtime: openai\n"
            + (f"    upstream_model: {args.upstream_model}\n" if args.upstream_model else "")
            + f"    replicas: 0\n    policy: {args.policy}\n    endpoints:\n{endpoints}\n")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "inferplane", "serve", "--config", str(tmp / "deploy.yaml"), "--log-dir", str(tmp)],
            stderr=subprocess.DEVNULL))
        gateway = f"http://127.0.0.1:{gw_port}"
        wait_ok(gateway + "/ready")
        router = None
        if args.vllm_router:
            rport = free_port()
            procs.append(subprocess.Popen(
                [args.vllm_router, "--host", "127.0.0.1", "--port", str(rport), "--worker-urls",
                 *([upstream] * args.replicas), "--policy", "round_robin", "--log-level", "error"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            router = f"http://127.0.0.1:{rport}"
            wait_ok(router + "/health")
        load = os.getloadavg()[0]
        print(f"policy={args.policy} replicas={args.replicas} upstream_model={args.upstream_model or '-'} duration={args.duration}s rounds={args.rounds} "
              f"cores={os.cpu_count()} load(1m) before={load:.2f}")
        print(f"{'conc':>4} {'round':>5} {'direct rps':>11} {'gateway rps':>12} {'ratio':>6} "
              f"{'direct p50':>10} {'gw p50':>8} {'+p50 ms':>8} {'direct p99':>10} {'gw p99':>8} {'+p99 ms':>8}")
        for c in args.concurrency:
            ratios, added50, rratios, radded50 = [], [], [], []
            for r in range(args.rounds):
                d = run_wrk(upstream + "/v1/chat/completions", c, args.duration, lua)
                g = run_wrk(gateway + "/v1/chat/completions", c, args.duration, lua, cpu_pid=procs[1].pid)
                ratios.append(g[0] / d[0])
                added50.append(g[1] - d[1])
                print(f"{c:>4} {r + 1:>5} {d[0]:>11.0f} {g[0]:>12.0f} {g[0] / d[0]:>6.2f} {d[1]:>10.3f} {g[1]:>8.3f} "
                      f"{g[1] - d[1]:>8.3f} {d[2]:>10.3f} {g[2]:>8.3f} {g[2] - d[2]:>8.3f}")
                if router:
                    v = run_wrk(router + "/v1/chat/completions", c, args.duration, lua)
                    d2 = run_wrk(upstream + "/v1/chat/completions", c, args.duration, lua)
                    rratios.append(v[0] / d2[0])
                    radded50.append(v[1] - d2[1])
                    print(f"{'':>4} {'':>5} {d2[0]:>11.0f} {v[0]:>12.0f} {v[0] / d2[0]:>6.2f} {d2[1]:>10.3f} "
                          f"{v[1]:>8.3f} {v[1] - d2[1]:>8.3f} {d2[2]:>10.3f} {v[2]:>8.3f} {v[2] - d2[2]:>8.3f}"
                          "  <- vllm-router")
            print(f"{c:>4}   inferplane: med ratio {statistics.median(ratios):.2f}  "
                  f"added p50 {statistics.median(added50):.3f} ms  "
                  f"gateway CPU {statistics.median(CPU_PER_REQUEST[-args.rounds:]):.0f} us/request")
            if rratios:
                print(f"{c:>4}   vllm-router: med ratio {statistics.median(rratios):.2f}  "
                      f"added p50 {statistics.median(radded50):.3f} ms")
        print(f"load(1m) after={os.getloadavg()[0]:.2f}")
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
