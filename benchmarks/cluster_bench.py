"""Scale-out and placement numbers: gateway workers, Ray vs local placement.

    python benchmarks/cluster_bench.py workers   [--duration 6] [--rounds 2] [--concurrency 32]
    python benchmarks/cluster_bench.py placement [--duration 6] [--rounds 2] [--concurrency 16]

``workers``: a null OpenAI upstream (benchmarks/null_upstream.py) behind `inferplane serve
--workers 1` and `--workers 2`, alternating, measured with wrk: requests/s, p50/p99, and the
CPU all gateway processes spent per request.

``placement``: the same deployment placed locally and on a one-node Ray cluster started by
`serve` (``placement: {backend: ray, address: local}``), run inside a private network
namespace (``unshare -n``; the script re-executes itself there). The replica is the vLLM
replay fake (tests/fakes/replay_runtime.py, answers without delay), launched through the
vLLM adapter's launch spec by each backend. Prints the time from starting `serve` to
/ready, then wrk through each gateway: requests/s, p99, gateway-process CPU per request
(Ray's driver threads live in that process: whatever they cost shows up here).

Prints numbers only; compare within one run (other work shares this machine's cores).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _procs import free_port, stop, wait_ok  # noqa: E402
from gateway_overhead import cpu_seconds, lua, run_wrk  # noqa: E402


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            if ppid == pid:
                out.append(int(entry.name))
    return out


def _serve(cfg: Path, tmp: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "inferplane", "serve", "--config", str(cfg),
                             "--log-dir", str(tmp), *extra], stderr=subprocess.DEVNULL)


def workers(args: argparse.Namespace, tmp: Path) -> None:
    up_port = free_port()
    upstream = subprocess.Popen([sys.executable, str(HERE / "null_upstream.py"), str(up_port)],
                                stdout=subprocess.DEVNULL)
    script = tmp / "req.lua"
    script.write_text(lua(0))
    try:
        wait_ok(f"http://127.0.0.1:{up_port}/health")
        results: dict[int, list[tuple[float, float, float, float]]] = {1: [], 2: []}
        for _ in range(args.rounds):
            for n in (1, 2):
                port = free_port()
                cfg = tmp / f"w{n}.yaml"
                cfg.write_text(f"gateway: {{port: {port}, scrape_interval_s: 60}}\ndeployments:\n"
                               f"  - {{name: m, runtime: openai, replicas: 0, policy: least_load, "
                               f"endpoints: [{{url: 'http://127.0.0.1:{up_port}'}}]}}\n")
                proc = _serve(cfg, tmp, "--workers", str(n))
                try:
                    url = f"http://127.0.0.1:{port}"
                    wait_ok(url + "/ready", timeout=60)
                    time.sleep(2.0 if n > 1 else 0.2)  # the follower binds and learns its endpoint
                    pids = [proc.pid, *[p for p in _children(proc.pid) if n > 1]]
                    cpu0 = sum(cpu_seconds(p) for p in pids)
                    rps, p50, p99 = run_wrk(url + "/v1/chat/completions", args.concurrency, args.duration,
                                            script)
                    cpu = sum(cpu_seconds(p) for p in pids) - cpu0
                    results[n].append((rps, p50, p99, cpu / max(rps * args.duration, 1) * 1e6))
                finally:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(60)
        print(f"cores: {os.cpu_count()}, load(1m) {os.getloadavg()[0]:.2f}; wrk -c{args.concurrency} "
              f"-d{args.duration}s, {args.rounds} round(s), null upstream")
        for n, rows in results.items():
            for rps, p50, p99, cpu_us in rows:
                print(f"--workers {n}: {rps:8.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
                      f"gateway CPU {cpu_us:6.0f} us/request")
    finally:
        stop([upstream])


def _replay_deployment(tmp: Path) -> str:
    wrapper = tmp / "fake-vllm"
    fixture = ROOT / "tests" / "fixtures" / "vllm" / "live"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{ROOT / "tests" / "fakes" / "replay_runtime.py"}" '
                       f'"{fixture}" "$0" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return (f"  - {{name: m, runtime: vllm, model: /models/smollm2, replicas: 1, executable: '{wrapper}', "
            f"policy: least_load, max_concurrent_sequences: 64, context_length_tokens: 2048, threads: 1, "
            f"env: {{REPLAY_TIME_SCALE: '0', REPLAY_LOAD_S: '0'}}}}\n")


def placement(args: argparse.Namespace, tmp: Path) -> None:
    if os.environ.get("INFERPLANE_NETNS") != "1":
        if shutil.which("unshare") is None:
            raise SystemExit("needs unshare (util-linux) to keep Ray inside a private network namespace")
        env = {**os.environ, "INFERPLANE_NETNS": "1", "HOME": str(tmp), "RAY_USAGE_STATS_ENABLED": "0"}
        cmd = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable, *sys.argv]
        raise SystemExit(subprocess.run(cmd, env=env).returncode)
    dep = _replay_deployment(tmp)
    script = tmp / "req.lua"
    script.write_text(lua(0))
    rows: list[tuple[str, float, float, float, float]] = []
    for _ in range(args.rounds):
        for backend in ("local", "ray"):
            port = free_port()
            cfg = tmp / f"{backend}.yaml"
            place = "placement: {backend: ray, address: local}\n" if backend == "ray" else ""
            cfg.write_text(f"gateway: {{port: {port}, scrape_interval_s: 60}}\n{place}deployments:\n{dep}")
            t0 = time.monotonic()
            proc = _serve(cfg, tmp)
            try:
                url = f"http://127.0.0.1:{port}"
                wait_ok(url + "/ready", timeout=180)
                ready_s = time.monotonic() - t0
                cpu0 = cpu_seconds(proc.pid)
                rps, _p50, p99 = run_wrk(url + "/v1/chat/completions", args.concurrency, args.duration, script)
                cpu_us = (cpu_seconds(proc.pid) - cpu0) / max(rps * args.duration, 1) * 1e6
                rows.append((backend, ready_s, rps, p99, cpu_us))
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(120)
    print(f"cores: {os.cpu_count()}, load(1m) {os.getloadavg()[0]:.2f}; wrk -c{args.concurrency} "
          f"-d{args.duration}s; replica: vLLM replay fake (no delay)")
    for backend, ready_s, rps, p99, cpu_us in rows:
        print(f"{backend:5}: serve->ready {ready_s:5.1f} s  {rps:7.0f} req/s  p99 {p99:6.2f} ms  "
              f"gateway CPU {cpu_us:5.0f} us/request")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["workers", "placement"])
    p.add_argument("--duration", type=int, default=6)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=32)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as d:
        (workers if args.what == "workers" else placement)(args, Path(d))


if __name__ == "__main__":
    main()
