"""Live routing quality: every policy over the same real embedded replicas, workloads and seeds.

For each policy one `inferplane serve` runs N replicas of the default model (1 thread, 2
slots, no host-RAM prompt cache: only the slots' own KV, like a GPU runtime's bounded
cache). For each workload and seed a trace is generated and replayed open-loop with
`inferplane bench --workload trace:FILE`; the same seed gives every policy the same
requests at the same times. Nothing about the order can favour a policy:

- arrivals are Poisson (``--rate`` requests/s), and which group / conversation each
  request belongs to is drawn at random, so round robin cannot line groups up with replicas;
- ``groups``: G synthetic system prompts x short questions;
- ``system-mix``: two shared system prompts (Zipf-popular) and prompts with none, over
  ShareGPT first questions;
- ``sharegpt``: ShareGPT multi-turn conversations (each turn's prompt = the history,
  with the dataset's replies), conversations interleaved, think time exponential;
- every prompt starts with a per-run nonce, so no run finds another run's cache.

Reported per policy x workload x seed, and as mean ± spread over seeds: prefix-cache hit
rate (the runtimes' own counters), TTFT p50/p99, throughput, and load imbalance
(max / mean over endpoints of the time-averaged in-flight count, sampled every 0.25 s).

    python benchmarks/routing_live.py [--replicas 3] [--seeds 1 2] [--requests 24]
        [--rate 1.0] [--workloads groups system-mix sharegpt]
        [--policies prefix least_load power_of_two session round_robin] [--src PATH]

--src PATH runs the gateway from another source tree (PYTHONPATH), e.g. the base commit,
for a before/after comparison on the same seeds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
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

from inferplane.bench.sharegpt import iter_conversations

_VOCAB = ("the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "on", "by", "river", "stone")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()


def words(rng: random.Random, n_tokens: int) -> str:
    return " ".join(rng.choice(_VOCAB) if rng.random() < 0.7 else f"w{rng.randrange(10**5)}" for _ in range(n_tokens))


def poisson_times(rng: random.Random, n: int, rate: float) -> list[float]:
    t, out = 0.0, []
    for _ in range(n):
        t += rng.expovariate(rate)
        out.append(t)
    return out


def trace_groups(rng: random.Random, args: argparse.Namespace, nonce: str) -> list[dict]:
    systems = [f"[{nonce} g{g}] " + words(rng, args.system_len) for g in range(args.groups)]
    return [{"timestamp": t, "max_tokens": 16,
             "messages": [{"role": "system", "content": rng.choice(systems)},
                          {"role": "user", "content": f"Question {i}: " + words(rng, 20)}]}
            for i, t in enumerate(poisson_times(rng, args.requests, args.rate))]


def _sharegpt(rng: random.Random, need: int, min_turns: int, chars: int) -> list[list[tuple[str, str]]]:
    """ShareGPT conversations (question, answer) pairs, each text cut to ``chars``."""
    convs = []
    for conv in itertools.islice(iter_conversations(), 4000):
        pairs = [(conv.turns[i][1][:chars], conv.turns[i + 1][1][:chars]) for i in range(0, len(conv.turns) - 1, 2)]
        if len(pairs) >= min_turns:
            convs.append(pairs)
    rng.shuffle(convs)
    return convs[:need]


def trace_system_mix(rng: random.Random, args: argparse.Namespace, nonce: str) -> list[dict]:
    systems = [f"[{nonce} s{g}] You are assistant {g}. " + words(rng, args.system_len) for g in range(2)]
    questions = [p[0][0] for p in _sharegpt(rng, args.requests, 1, args.turn_chars)]
    rows = []
    for i, t in enumerate(poisson_times(rng, args.requests, args.rate)):
        r = rng.random()
        msgs = [{"role": "user", "content": f"[{nonce} q{i}] " + questions[i % len(questions)]}]
        if r < 0.75:  # 3/4 share a system prompt, the popular one twice as often
            msgs.insert(0, {"role": "system", "content": systems[0 if r < 0.5 else 1]})
        rows.append({"timestamp": t, "max_tokens": 16, "messages": msgs})
    return rows


def trace_sharegpt(rng: random.Random, args: argparse.Namespace, nonce: str) -> list[dict]:
    turns_per = 4
    convs = _sharegpt(rng, max(1, args.requests // turns_per + 1), 2, args.turn_chars)
    starts = poisson_times(rng, len(convs), args.rate / turns_per)
    rows = []
    for c, (pairs, t) in enumerate(zip(convs, starts, strict=True)):
        history: list[dict] = [{"role": "system", "content": f"[{nonce} c{c}] You are a helpful assistant."}]
        for question, answer in pairs[:turns_per]:
            rows.append({"timestamp": t, "max_tokens": 16,
                         "messages": [*history, {"role": "user", "content": question}]})
            history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            t += rng.expovariate(1 / args.think_s)
    rows.sort(key=lambda r: r["timestamp"])
    return rows[: args.requests]


TRACES = {"groups": trace_groups, "system-mix": trace_system_mix, "sharegpt": trace_sharegpt}


def cache_counters(gateway: str) -> tuple[float, float]:
    text = get(gateway + "/metrics").decode()
    hits = sum(float(m) for m in re.findall(r"^inferplane_endpoint_prefix_cache_hits\{.*\} (\S+)$", text, re.M))
    queries = sum(float(m) for m in re.findall(r"^inferplane_endpoint_prefix_cache_queries\{.*\} (\S+)$", text, re.M))
    return hits, queries


class InFlightSampler(threading.Thread):
    """Samples every endpoint's in-flight count; ``imbalance`` = max/mean of their averages."""

    def __init__(self, gateway: str) -> None:
        super().__init__(daemon=True)
        self.gateway = gateway
        self.sums: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.25):
            try:
                eps = json.loads(get(self.gateway + "/admin/endpoints"))["endpoints"]
            except OSError:
                continue
            for e in eps:
                self.sums[e["id"]] = self.sums.get(e["id"], 0.0) + e["in_flight"]

    def imbalance(self) -> float:
        vals = list(self.sums.values())
        mean = statistics.fmean(vals) if vals else 0.0
        return max(vals) / mean if mean else float("nan")


def start_gateway(policy: str, args: argparse.Namespace, tmp: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cfg = tmp / f"{policy}.yaml"
    cfg.write_text(
        f"gateway:\n  port: {port}\n  scrape_interval_s: 1\ndeployments:\n  - name: smollm2\n"
        f"    replicas: {args.replicas}\n    max_concurrent_sequences: 2\n    threads: 1\n    policy: {policy}\n"
        f"    extra_args: [--cache-ram-mib, '0']\n")
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = os.path.abspath(args.src)
    proc = subprocess.Popen([sys.executable, "-m", "inferplane", "serve", "--config", str(cfg),
                             "--log-dir", str(tmp)], stderr=subprocess.DEVNULL, env=env)
    gateway = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            if json.loads(get(gateway + "/ready"))["status"] == "ready":
                time.sleep(1.5)
                return proc, gateway
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    stop(proc)
    raise RuntimeError(f"gateway for {policy} did not become ready")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_one(gateway: str, workload: str, seed: int, args: argparse.Namespace, tmp: Path, tag: str) -> dict:
    rng = random.Random(seed)
    rows = TRACES[workload](rng, args, nonce=f"{tag}-{workload}-{seed}")
    trace = tmp / f"trace-{tag}-{workload}-{seed}.jsonl"
    trace.write_text("".join(json.dumps(r) + "\n" for r in rows))
    h0, q0 = cache_counters(gateway)
    sampler = InFlightSampler(gateway)
    sampler.start()
    out = tmp / f"bench-{tag}-{workload}-{seed}"
    try:
        subprocess.run([sys.executable, "-m", "inferplane", "bench", "--url", gateway, "--model", "smollm2",
                        "--workload", f"trace:{trace}", "--output-dir", str(out), "--no-progress",
                        "--request-timeout-s", str(args.request_timeout_s)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        sampler.stop.set()
        sampler.join()
    time.sleep(2.5)  # two scrapes: the runtimes' counters include the last requests
    h1, q1 = cache_counters(gateway)
    m = json.loads((out / "summary.json").read_text())["runs"][0]["metrics"]
    return {"hit": (h1 - h0) / (q1 - q0) if q1 > q0 else float("nan"), "ttft_p50": m["ttft"]["p50"],
            "ttft_p99": m["ttft"]["p99"], "rps": m["request_throughput"], "failed": m["n_failed"],
            "imbalance": sampler.imbalance()}


def spread(vals: list[float]) -> str:
    if len(vals) < 2:
        return f"{vals[0]:.2f}"
    return f"{statistics.fmean(vals):.2f}±{statistics.stdev(vals):.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--requests", type=int, default=24)
    ap.add_argument("--rate", type=float, default=1.0, help="mean arrivals per second (Poisson)")
    ap.add_argument("--groups", type=int, default=5)
    ap.add_argument("--system-len", type=int, default=400, help="system prompt words (about tokens)")
    ap.add_argument("--think-s", type=float, default=3.0, help="sharegpt: mean think time between turns")
    ap.add_argument("--turn-chars", type=int, default=400, help="ShareGPT texts are cut to this many characters")
    ap.add_argument("--request-timeout-s", type=float, default=300)
    ap.add_argument("--workloads", nargs="+", default=list(TRACES), choices=list(TRACES))
    ap.add_argument("--policies", nargs="+", default=["prefix", "least_load", "power_of_two", "session", "round_robin"])
    ap.add_argument("--src", help="run the gateway from this source tree instead (PYTHONPATH)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="routing-live-"))
    label = args.src or "this tree"
    print(f"{args.replicas} replicas x 2 slots x 1 thread, no RAM prompt cache; {args.requests} requests/run, "
          f"Poisson {args.rate}/s; seeds {args.seeds}; gateway from {label}; load(1m)={os.getloadavg()[0]:.2f}")
    print(f"{'policy':<13} {'workload':<11} {'seed':>4} {'hit %':>6} {'TTFT p50':>9} {'TTFT p99':>9} "
          f"{'req/s':>6} {'imbal':>6} failed")
    results: dict[tuple[str, str], list[dict]] = {}
    for policy in args.policies:
        proc, gateway = start_gateway(policy, args, tmp)
        try:
            for workload in args.workloads:
                for seed in args.seeds:
                    r = run_one(gateway, workload, seed, args, tmp, tag=f"{policy}-{os.getpid()}")
                    results.setdefault((policy, workload), []).append(r)
                    print(f"{policy:<13} {workload:<11} {seed:>4} {100 * r['hit']:>6.1f} {r['ttft_p50'] * 1e3:>7.0f}ms "
                          f"{r['ttft_p99'] * 1e3:>7.0f}ms {r['rps']:>6.2f} {r['imbalance']:>6.2f} {r['failed']}",
                          flush=True)
        finally:
            stop(proc)
    print(f"\nmean±stdev over seeds {args.seeds} (load(1m) now {os.getloadavg()[0]:.2f}):")
    print(f"{'policy':<13} {'workload':<11} {'hit %':>12} {'TTFT p50 s':>12} {'TTFT p99 s':>12} {'req/s':>11} {'imbal':>11}")
    for (policy, workload), rs in results.items():
        print(f"{policy:<13} {workload:<11} {spread([100 * r['hit'] for r in rs]):>12} "
              f"{spread([r['ttft_p50'] for r in rs]):>12} {spread([r['ttft_p99'] for r in rs]):>12} "
              f"{spread([r['rps'] for r in rs]):>11} {spread([r['imbalance'] for r in rs]):>11}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
