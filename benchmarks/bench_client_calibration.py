"""Calibrate the ``inferplane bench`` client against a null server: its max req/s and added latency.

The null server (``inferplane.bench.null_server``, raw asyncio, answers instantly) runs in its
own process. For each mode (non-streaming, streaming) and each client worker count, the
client sends a burst of requests through the regular load generator at high concurrency (max
throughput), then a concurrency-1 run (added latency: the client's own per-request
overhead + loopback). Nothing is asserted; numbers are printed (and written as JSON with
``--json``).

    PYTHONPATH=src python benchmarks/bench_client_calibration.py --requests 20000 --workers 1 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import orjson

from inferplane.bench.client import ClientConfig
from inferplane.bench.metrics import compute_run_metrics
from inferplane.bench.runner import LoadConfig, run_load
from inferplane.bench.workloads import synthetic


def start_null_server(stream: bool) -> tuple[subprocess.Popen[str], str]:
    """Start the null server process; returns it and its base URL."""
    cmd = [sys.executable, "-m", "inferplane.bench.null_server", "--port", "0"] + (["--stream"] if stream else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"null server failed to start: {line!r}")
    return proc, f"http://127.0.0.1:{line.split()[1]}"


def calibrate(stream: bool, workers: int, requests: int, concurrency: int) -> dict[str, object]:
    """One throughput run and one latency run against a fresh null server."""
    proc, url = start_null_server(stream)
    try:
        cfg = ClientConfig(base_url=url, model="null", stream=stream)
        wl = synthetic(min(requests, 1000), input_len=16, output_len=2, nonce="calib")
        load = LoadConfig(concurrency=concurrency, workers=workers, warmup_requests=200)
        res = run_load(wl, cfg, load, n=requests)
        m = compute_run_metrics(res.records)
        lat = run_load(wl, cfg, LoadConfig(concurrency=1, warmup_requests=50), n=min(2000, requests))
        ml = compute_run_metrics(lat.records)
        return {
            "stream": stream,
            "workers": workers,
            "concurrency": concurrency,
            "requests": m.n_requests,
            "failed": m.n_failed,
            "max_rps": round(m.request_throughput, 1),
            "client_cpu_pct": [round(c, 1) for c in res.worker_cpu_pct],
            "added_latency_p50_ms": round(ml.e2e.p50 * 1e3, 3),
            "added_latency_p99_ms": round(ml.e2e.p99 * 1e3, 3),
            "ttft_p50_ms_at_max": round(m.ttft.p50 * 1e3, 2),
        }
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    """Parse flags, run every (mode, workers) pair, print a table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    rows = []
    for stream in (False, True):
        for workers in args.workers:
            row = calibrate(stream, workers, args.requests, args.concurrency)
            rows.append(row)
            print(
                f"stream={row['stream']!s:5} workers={workers} max={row['max_rps']:>8} req/s "
                f"cpu%={row['client_cpu_pct']} added latency p50={row['added_latency_p50_ms']} ms "
                f"p99={row['added_latency_p99_ms']} ms failed={row['failed']}",
                flush=True,
            )
    if args.json:
        args.json.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
