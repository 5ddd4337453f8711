"""What traces and the access log cost per request: gateway CPU and RPS with each on vs off.

Starts the null upstream (benchmarks/null_upstream.py), a null OTLP/HTTP collector (answers
every export 200, in this process), and one gateway per setting - ``none``, ``access_log``
(to a file), ``tracing`` (sample ratio 1, to the null collector), ``both`` - then runs wrk
against each in turn, alternating, for every round and concurrency. Prints each run, then
the median gateway CPU microseconds per request (the least noise-sensitive number) and the
difference from ``none``.

    python benchmarks/observer_overhead.py [--duration 6] [--rounds 3] [--concurrency 1 32]
        [--prompt-chars 0] [--settings none access_log tracing both]
    python benchmarks/observer_overhead.py --in-process 20000 [--prompt-chars 8000]

``--in-process N`` times just the observers' four calls per request, on this thread.

Everything shares this machine's cores: compare within one run, not across runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _procs import free_port, stop, wait_ok  # noqa: E402
from gateway_overhead import CPU_PER_REQUEST, lua, run_wrk  # noqa: E402

SETTINGS = ("none", "access_log", "tracing", "both")


class _NullCollector(BaseHTTPRequestHandler):
    exports = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).exports += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


def start_gateway(tmp: Path, upstream: str, setting: str, collector: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    gateway: dict[str, object] = {"port": port, "scrape_interval_s": 60.0}
    if setting in ("access_log", "both"):
        gateway["access_log"] = str(tmp / f"access-{port}.jsonl")
    if setting in ("tracing", "both"):
        gateway["tracing"] = {"otlp_endpoint": collector, "sample_ratio": 1.0}
    cfg = tmp / f"deploy-{port}.yaml"
    cfg.write_text(yaml.safe_dump({"gateway": gateway, "deployments": [
        {"name": "m", "runtime": "openai", "replicas": 0, "policy": "least_load", "endpoints": [{"url": upstream}]}]}))
    proc = subprocess.Popen([sys.executable, "-m", "inferplane", "serve", "--config", str(cfg), "--log-dir", str(tmp)],
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ok(url + "/ready", timeout=120)
    return proc, url


def in_process(n: int, prompt_chars: int) -> None:
    """The observers alone: the four calls of ``n`` requests, timed on this thread (no gateway)."""
    import time

    from gateway_overhead import body

    from inferplane.config.observability import TracingConfig
    from inferplane.observability.access_log import AccessLog, LineWriter
    from inferplane.observability.observer import Attempt, Observers, Outcome, RequestRecord, Usage
    from inferplane.observability.tracing import build_tracing
    from inferplane.protocol.routes import Route, SurfaceName

    class _Drop:  # a span exporter that keeps nothing: only the gateway's side is measured
        def export(self, spans):  # type: ignore[no-untyped-def]
            from opentelemetry.sdk.trace.export import SpanExportResult
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None: ...

        def force_flush(self, timeout_millis: int = 0) -> bool:
            return True

    raw = body(prompt_chars).encode()
    settings = {"access_log": lambda: AccessLog(LineWriter(os.devnull)),
                "tracing": lambda: build_tracing(TracingConfig(), exporter=_Drop()),  # type: ignore[arg-type]
                "tracing@0.1": lambda: build_tracing(TracingConfig(sample_ratio=0.1), exporter=_Drop())}  # type: ignore[arg-type]
    for name, make in settings.items():
        obs = make()
        fan = Observers((obs,))
        t0 = time.perf_counter()
        for i in range(n):
            now = time.perf_counter()
            rec = RequestRecord(request_id=f"r{i}", surface=SurfaceName.OPENAI, route=Route.CHAT, t_start=now,
                                started_unix=time.time(), path="/v1/chat/completions", body=raw, model="m")
            fan.started(rec)
            fan.attempt(rec, Attempt("m-0", "m", "openai", "least_load", "least load 0", "ok", now, now, 200))
            fan.first_token(rec, now)
            fan.finished(rec, Outcome(200, now, usage=Usage(12, 8, 0), ttft_s=0.0, endpoint_id="m-0",
                                      runtime="openai"))
        per = (time.perf_counter() - t0) / n * 1e6
        obs.close()
        print(f"in-process {name:>11}: {per:6.1f} us per request (the four observer calls, {prompt_chars}-char prompt)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--prompt-chars", type=int, default=0)
    ap.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    ap.add_argument("--in-process", type=int, metavar="N", default=0,
                    help="only time the observers' calls for N requests in this process (no gateway, no wrk)")
    args = ap.parse_args()
    if args.in_process:
        in_process(args.in_process, args.prompt_chars)
        return 0
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="obs-bench-"))
    procs: list[subprocess.Popen] = []
    collector = ThreadingHTTPServer(("127.0.0.1", 0), _NullCollector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    up_port = free_port()
    upstream_proc = subprocess.Popen([sys.executable, str(HERE / "null_upstream.py"), str(up_port)])
    table: dict[tuple[str, int], list[float]] = {}
    rps: dict[tuple[str, int], list[float]] = {}
    try:
        upstream = f"http://127.0.0.1:{up_port}"
        wait_ok(upstream + "/health")
        script = tmp / "post.lua"
        script.write_text(lua(args.prompt_chars))
        gateways = []
        for s in args.settings:
            proc, url = start_gateway(tmp, upstream, s, f"http://127.0.0.1:{collector.server_address[1]}")
            procs.append(proc)
            gateways.append((s, proc, url))
            run_wrk(url + "/v1/chat/completions", 8, 1, script)  # warm its upstream pool
        print(f"settings={args.settings} duration={args.duration}s rounds={args.rounds} prompt_chars="
              f"{args.prompt_chars} cores={os.cpu_count()} load(1m) before={os.getloadavg()[0]:.2f}")
        print(f"{'conc':>4} {'round':>5} {'setting':>10} {'rps':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/req':>10}")
        for c in args.concurrency:
            for r in range(args.rounds):
                for s, proc, url in gateways:
                    g = run_wrk(url + "/v1/chat/completions", c, args.duration, script, cpu_pid=proc.pid)
                    table.setdefault((s, c), []).append(CPU_PER_REQUEST[-1])
                    rps.setdefault((s, c), []).append(g[0])
                    print(f"{c:>4} {r + 1:>5} {s:>10} {g[0]:>8.0f} {g[1]:>7.3f} {g[2]:>7.3f} {CPU_PER_REQUEST[-1]:>10.0f}")
        print(f"\nmedian of {args.rounds} rounds (collector exports received: {_NullCollector.exports}):")
        for c in args.concurrency:
            base = statistics.median(table[("none", c)]) if ("none", c) in table else None
            for s in args.settings:
                cpu = statistics.median(table[(s, c)])
                delta = f"{cpu - base:+.0f}" if base is not None else "-"
                print(f"  c={c:<3} {s:>10}: {cpu:6.0f} us CPU/request ({delta} vs none), "
                      f"{statistics.median(rps[(s, c)]):7.0f} req/s")
        print(f"load(1m) after={os.getloadavg()[0]:.2f}")
    finally:
        stop(procs)
        upstream_proc.send_signal(signal.SIGTERM)
        upstream_proc.wait(15)
        collector.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
