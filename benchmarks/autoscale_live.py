"""Autoscaling, live: a short bursty workload against `inferplane serve` with embedded replicas.

The live counterpart of autoscale_sim.py. For each policy - fixed at ``--max-replicas``, and
ours (``autoscale:`` with min 1) - starts `inferplane serve` with embedded SmolLM2
replicas (1 thread, ``--slots`` each), replays ShareGPT first turns with gamma arrivals in
quiet and busy phases (~2 min by default) through the OpenAI client (streaming), samples
``/admin/deployments`` every second, and prints SLO attainment (TTFT <= ``--ttft-slo-s``),
TTFT p50/p95, replica-seconds, failed requests and scale events. Then measures, with
``min_replicas: 0``, request-to-first-token from zero replicas (``--cold`` times), and the
replica start time the simulator takes as ``--start-s``.

    python benchmarks/autoscale_live.py                 # ~6 min on 2 cores
    python benchmarks/autoscale_live.py --phases 0.05:20,0.5:20 --cold 1

Talks to 127.0.0.1 only; prints numbers, asserts nothing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

try:
    import inferplane  # noqa: F401
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from inferplane.bench.schedule import stage_offsets
from inferplane.bench.workloads import sharegpt


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


class Serve:
    def __init__(self, deployment: dict[str, Any], tmp: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = tmp / f"deploy-{self.port}.yaml"
        cfg.write_text(yaml.safe_dump({"gateway": {"scrape_interval_s": 1.0}, "deployments": [deployment]}))
        self.log = (tmp / f"serve-{self.port}.log").open("wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "inferplane", "serve", "--port", str(self.port),
                                      "--config", str(cfg), "--log-dir", str(tmp / "logs")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url + "/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.1)
        self.ready_s = time.perf_counter() - t0

    def deployment(self) -> dict[str, Any]:
        return _get(self.url + "/admin/deployments/smollm2")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)
        self.log.close()


def _one(url: str, messages: list[dict[str, str]], max_tokens: int, out: dict[str, Any]) -> None:
    import openai

    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=180)
    t0 = time.perf_counter()
    try:
        for chunk in client.chat.completions.create(model="smollm2", messages=messages, max_tokens=max_tokens,
                                                    stream=True):
            if "ttft" not in out and chunk.choices and chunk.choices[0].delta.content:
                out["ttft"] = time.perf_counter() - t0
        out["ok"] = True
    except Exception as exc:  # a failure is a result here
        out["error"] = repr(exc)


def replay(serve: Serve, plan: list[tuple[float, list[dict[str, str]], int]]) -> tuple[list[dict[str, Any]], float, int]:
    results: list[dict[str, Any]] = [{} for _ in plan]
    threads: list[threading.Thread] = []
    samples: list[int] = []
    desired: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            d = serve.deployment()
            samples.append(d["ready"] + d["starting"] + d["draining"])
            desired.append(d["desired"])
            stop.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    for (offset, messages, max_tokens), out in zip(plan, results, strict=True):
        time.sleep(max(0.0, t0 + offset - time.perf_counter()))
        t = threading.Thread(target=_one, args=(serve.url, messages, max_tokens, out), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(300)
    stop.set()
    sampler.join(5)
    events = sum(1 for a, b in itertools.pairwise(desired) if a != b)
    return results, float(sum(samples)), events


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phases", default="0.05:30,0.6:30,0.05:30,0.6:30", help="RATE:SECONDS stages")
    ap.add_argument("--burstiness", type=float, default=0.5)
    ap.add_argument("--max-replicas", type=int, default=3)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--target", type=float, default=2.0)
    ap.add_argument("--scale-down-delay-s", type=float, default=20.0)
    ap.add_argument("--ttft-slo-s", type=float, default=8.0)
    ap.add_argument("--max-input", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--cold", type=int, default=3, help="cold starts from zero replicas to measure")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    stages = [(float(r), float(d)) for r, d in (x.split(":") for x in args.phases.split(","))]
    offsets = stage_offsets(stages, "gamma", burstiness=args.burstiness, seed=args.seed)
    wl = sharegpt(len(offsets), seed=args.seed, max_tokens=args.max_tokens, max_input=args.max_input,
                  max_total=args.max_input + args.max_tokens)
    plan = [(t, [{"role": role, "content": text} for role, text in r.messages], r.max_tokens)
            for t, r in zip(offsets, wl.requests, strict=True)]
    base = {"name": "smollm2", "threads": 1, "max_concurrent_sequences": args.slots, "context_length_tokens": 1024}
    autoscale = {"min_replicas": 1, "max_replicas": args.max_replicas, "target_in_flight_per_replica": args.target,
                 "scale_down_delay_s": args.scale_down_delay_s, "interval_s": 1.0}
    runs = [("fixed-max", {**base, "replicas": args.max_replicas}), ("ours", {**base, "autoscale": autoscale})]
    print(f"{len(plan)} requests over {sum(d for _, d in stages):.0f} s; uptime: {os.getloadavg()[0]:.1f} load (1 min)")
    print(f"{'policy':<10} {'SLO att.':>8} {'TTFT p50':>9} {'TTFT p95':>9} {'replica-s':>10} {'failed':>7} "
          f"{'scale ev.':>9} {'serve->ready':>12}")
    with tempfile.TemporaryDirectory(prefix="autoscale-live-") as tmp:
        for name, dep in runs:
            serve = Serve(dep, Path(tmp))
            try:
                results, replica_s, events = replay(serve, plan)
            finally:
                serve.stop()
            ttfts = sorted(r["ttft"] for r in results if "ttft" in r)
            failed = sum(1 for r in results if "error" in r)
            ok = sum(1 for r in results if r.get("ok") and r.get("ttft", 1e9) <= args.ttft_slo_s)
            p = statistics.quantiles(ttfts, n=20) if len(ttfts) >= 2 else [float("nan")] * 19
            print(f"{name:<10} {ok / len(results):>7.1%} {statistics.median(ttfts):>8.2f}s {p[18]:>8.2f}s "
                  f"{replica_s:>10.0f} {failed:>7} {events:>9} {serve.ready_s:>11.1f}s")
        if args.cold:
            zero = {**base, "replicas": 1, "autoscale": {"min_replicas": 0, "max_replicas": 1, "scale_to_zero_after_s": 2,
                                                         "scale_down_delay_s": 1, "interval_s": 0.5}}
            serve = Serve(zero, Path(tmp))
            cold: list[float] = []
            try:
                for _ in range(args.cold):
                    while serve.deployment()["endpoints"]:
                        time.sleep(0.2)
                    out: dict[str, Any] = {}
                    _one(serve.url, [{"role": "user", "content": "Say hi."}], 4, out)
                    cold.append(out.get("ttft", float("nan")))
            finally:
                serve.stop()
            print(f"request-to-first-token from zero replicas: {', '.join(f'{c:.2f}' for c in cold)} s "
                  f"(median {statistics.median(cold):.2f} s)")
    print(f"load (1 min) after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
