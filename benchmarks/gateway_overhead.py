"""Gateway overhead: requests/s and latency through `inferplane serve` vs direct to the upstream.

Starts a null OpenAI upstream (benchmarks/null_upstream.py) and a gateway in front of it
(runtime 'openai', one endpoint), then runs wrk (Debian package) against both, alternating,
for each concurrency and round. Prints RPS ratios and the added p50/p99 latency.

    python benchmarks/gateway_overhead.py [--duration 6] [--rounds 2] [--concurrency 1 32]
        [--policy least_load ...] [--replicas 1 ...] [--prompt-chars 0 ...] [--vllm-router PATH]
        [--upstream-model NAME] [--tenants none limits redis]
        [--compare-src PATH]

With several --policy, --replicas or --prompt-chars values, every combination is measured
and a table of gateway CPU per request (the least noise-sensitive number) closes the run.
--prompt-chars N adds an N-character system prompt to the request (0: the short body alone).
--tenants MODE... runs one gateway per mode, alternating in the same rounds: ``none`` (no keys),
``keys`` (a tenant key, no limits), ``limits`` (a tenant with rpm/tpm/max_concurrent limits too
high to refuse anything: the whole admission path, in-process buckets), ``redis`` (the same
limits in a redis-server the benchmark starts). Every request carries the key.
--compare-src PATH also runs each gateway from another source tree (PYTHONPATH=PATH, e.g.
an unpacked `git archive` of the base commit's src/), alternating with this one in the same
rounds: a before/after comparison measured side by side.
Endpoints are probed every --scrape-interval-s (default 3,600 s: one round at start-up, before the
measured seconds). A round costs about 0.74 M instructions per endpoint (0.25 s of CPU for 1,000),
whatever the traffic: with the 60 s this used to default to, a cell with --compare-src and two
concurrencies ran ~100 s, so a round fell into some 1,000-endpoint windows and none of the
2-endpoint ones. What a round costs is counted on its own by --instructions.

--instructions N counts the whole gateway's CPU instructions per request instead of timing it under
wrk: `serve` runs under valgrind's callgrind, and windows of N and 2N requests from a bounded client
are subtracted (start-up and warm-up cancel; see _gateway_callgrind.py). Deterministic, so it is the
number to steer by on a loaded box; slow (keep N to a few hundred or thousand, one run at a time).
--annotate adds, per policy, the functions whose instructions per request grew the most from the
smallest to the largest --replicas.
--distinct-urls gives every endpoint a base URL of its own (``http://127.0.0.1:PORT/rI``, the null
upstream answers under any prefix), so the gateway keeps one connection pool per endpoint, as it does
for a real fleet of separate hosts; without it every endpoint is the same URL and shares one pool.

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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import _gateway_callgrind as callgrind  # noqa: E402
from _procs import free_port, stop, wait_ok  # noqa: E402

QUESTION = '{"role":"user","content":"Say hello in one short sentence, please."}'


def body(prompt_chars: int, model: str = "m") -> str:
    """The request body: the short question, after a ``prompt_chars``-character system prompt."""
    system = ""
    if prompt_chars:
        text = ("lorem ipsum dolor sit amet consectetur " * (prompt_chars // 39 + 1))[:prompt_chars]
        system = f'{{"role":"system","content":"{text}"}},'
    return f'{{"model":"{model}","messages":[{system}{QUESTION}],"max_tokens":16}}'


def lua(prompt_chars: int, model: str = "m") -> str:
    return f"""wrk.method = "POST"
wrk.body = '{body(prompt_chars, model)}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {BENCH_KEY}"
"""


BENCH_KEY = "bench-tenant-key"
# sha256 of BENCH_KEY, computed here so the benchmark needs nothing from the package
BENCH_KEY_SHA256 = __import__("hashlib").sha256(BENCH_KEY.encode()).hexdigest()


def tenants_yaml(mode: str, redis_url: str | None) -> str:
    """The gateway config lines for a --tenants mode."""
    if mode == "none":
        return ""
    lines = f"  tenants:\n    - name: bench\n      key_sha256: {BENCH_KEY_SHA256}\n"
    if mode in ("limits", "redis"):
        lines += "      rpm_limit: 1000000000\n      tpm_limit: 1000000000000\n      max_concurrent: 100000\n"
    if mode == "redis":
        lines += f"  limits_store: {redis_url}\n"
    return lines




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



def start_gateway(tmp: Path, upstream: str, *, policy: str, replicas: int, scrape_s: float,
                  src: str | None, upstream_model: str | None = None, tenants: str = "none",
                  redis_url: str | None = None, distinct_urls: bool = False,
                  wrap: list[str] | None = None) -> tuple[subprocess.Popen, str]:
    """``inferplane serve`` with ``replicas`` endpoints at ``upstream`` (each under a path of its own
    with ``distinct_urls``); ``wrap``: a command to run it under (valgrind)."""
    gw_port = free_port()
    endpoints = "\n".join(f"      - url: {upstream}/r{i}" if distinct_urls else f"      - url: {upstream}"
                          for i in range(replicas))
    cfg = tmp / f"deploy-{gw_port}.yaml"
    cfg.write_text(
        f"gateway:\n  port: {gw_port}\n  scrape_interval_s: {scrape_s}\n{tenants_yaml(tenants, redis_url)}deployments:\n"
        f"  - name: {'client-m' if upstream_model else 'm'}\n"
        + (f"    upstream_model: {upstream_model}\n" if upstream_model else "")
        + f"    runtime: openai\n    replicas: 0\n    policy: {policy}\n    endpoints:\n{endpoints}\n")
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    if wrap:
        env["PYTHONHASHSEED"] = "0"
        env["PYTHONPATH"] = str(HERE / "_callgrind_site") + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([*(wrap or []), sys.executable, "-m", "inferplane", "serve", "--config", str(cfg),
                             "--log-dir", str(tmp)], stderr=subprocess.DEVNULL, env=env)
    gateway = f"http://127.0.0.1:{gw_port}"
    try:
        wait_ok(gateway + "/ready", timeout=900 if wrap else 120)
    except BaseException:
        stop([proc])
        raise
    return proc, gateway


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--policy", "--policies", dest="policies", nargs="+", default=["least_load"])
    ap.add_argument("--replicas", type=int, nargs="+", default=[1], help="endpoints in the pool (all the same upstream)")
    ap.add_argument("--prompt-chars", type=int, nargs="+", default=[0])
    ap.add_argument("--scrape-interval-s", type=float, default=3600.0)
    ap.add_argument("--compare-src", help="a second source tree to run each gateway from, alternating")
    ap.add_argument("--upstream-model", help="serve as 'client-m' and rewrite each request's model to this name "
                    "(the null upstream's name is 'm'): the cost of the rewrite")
    ap.add_argument("--vllm-router", help="path of a vllm-router executable to measure alongside")
    ap.add_argument("--tenants", nargs="+", default=["none"], choices=["none", "keys", "limits", "redis"],
                    help="admission configs to measure side by side (see the module docstring)")
    ap.add_argument("--instructions", type=int, default=0, metavar="N",
                    help="count instructions per request under callgrind (windows of N and 2N requests)")
    ap.add_argument("--annotate", action="store_true", help="with --instructions: the functions that grew most")
    ap.add_argument("--distinct-urls", action="store_true", help="a base URL (and connection pool) per endpoint")
    args = ap.parse_args()
    if args.instructions and not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        print("valgrind not found: apt-get install valgrind", file=sys.stderr)
        return 2
    if not args.instructions and not shutil.which("wrk"):
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    up_port = free_port()
    procs: list[subprocess.Popen] = []
    srcs: list[tuple[str, str | None]] = [("this", None)]
    if args.compare_src:
        srcs.insert(0, ("compare", str(Path(args.compare_src).resolve())))
    srcs = [(label if mode == "none" else f"{label}+{mode}", src, mode) for label, src in srcs  # type: ignore[misc]
            for mode in args.tenants]
    redis_proc = None
    if "redis" in args.tenants:
        redis_port = free_port()
        redis_proc = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL)
        args.redis_url = f"redis://127.0.0.1:{redis_port}"
        time.sleep(0.5)  # redis-server binds in milliseconds
    table: dict[tuple[str, int, int, str, int], list[float]] = {}
    try:
        upstream_proc = subprocess.Popen([sys.executable, str(HERE / "null_upstream.py"), str(up_port)])
        upstream = f"http://127.0.0.1:{up_port}"
        wait_ok(upstream + "/health")
        print(f"policies={args.policies} replicas={args.replicas} prompt_chars={args.prompt_chars} "
              f"duration={args.duration}s rounds={args.rounds} cores={os.cpu_count()} "
              f"load(1m) before={os.getloadavg()[0]:.2f}"
              + (f" compare-src={srcs[0][1]}" if args.compare_src else ""))
        if args.instructions:
            count_instructions(args, upstream, tmp, procs, srcs)
            return 0
        for prompt_chars in args.prompt_chars:
            script = tmp / f"post-{prompt_chars}.lua"
            script.write_text(lua(prompt_chars, "client-m" if args.upstream_model else "m"))
            for replicas in args.replicas:
                for policy in args.policies:
                    measure_cell(args, table, upstream, tmp, script, procs, srcs,
                                 policy=policy, replicas=replicas, prompt_chars=prompt_chars)
        print_table(table, args, srcs)
        print(f"load(1m) after={os.getloadavg()[0]:.2f}")
    finally:
        stop(procs)
        upstream_proc.send_signal(signal.SIGTERM)
        upstream_proc.wait(15)
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(15)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def measure_cell(args: argparse.Namespace, table: dict, upstream: str, tmp: Path, script: Path,
                 procs: list[subprocess.Popen], srcs: list[tuple[str, str | None, str]], *,
                 policy: str, replicas: int, prompt_chars: int) -> None:
    gateways = []
    for label, src, mode in srcs:
        proc, url = start_gateway(tmp, upstream, policy=policy, replicas=replicas,
                                  scrape_s=args.scrape_interval_s, src=src, upstream_model=args.upstream_model,
                                  tenants=mode, redis_url=getattr(args, "redis_url", None))
        procs.append(proc)
        gateways.append((label, proc, url))
    router = None
    if args.vllm_router:
        rport = free_port()
        procs.append(subprocess.Popen(
            [args.vllm_router, "--host", "127.0.0.1", "--port", str(rport), "--worker-urls",
             *([upstream] * replicas), "--policy", "round_robin", "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        router = f"http://127.0.0.1:{rport}"
        wait_ok(router + "/health")
    for _, _, url in gateways:  # warm the upstream connection pools of every endpoint
        run_wrk(url + "/v1/chat/completions", 8, 1, script)
    print(f"-- policy={policy} replicas={replicas} prompt_chars={prompt_chars} load(1m)={os.getloadavg()[0]:.2f}")
    print(f"{'conc':>4} {'round':>5} {'src':>8} {'direct rps':>11} {'gateway rps':>12} {'ratio':>6} "
          f"{'direct p50':>10} {'gw p50':>8} {'+p50 ms':>8} {'gw p99':>8} {'CPU us/req':>10}")
    for c in args.concurrency:
        for r in range(args.rounds):
            for label, proc, url in gateways:
                d = run_wrk(upstream + "/v1/chat/completions", c, args.duration, script)
                g = run_wrk(url + "/v1/chat/completions", c, args.duration, script, cpu_pid=proc.pid)
                cpu = CPU_PER_REQUEST[-1]
                table.setdefault((label, prompt_chars, replicas, policy, c), []).append(cpu)
                table.setdefault((label + ":ratio", prompt_chars, replicas, policy, c), []).append(g[0] / d[0])
                print(f"{c:>4} {r + 1:>5} {label:>8} {d[0]:>11.0f} {g[0]:>12.0f} {g[0] / d[0]:>6.2f} {d[1]:>10.3f} "
                      f"{g[1]:>8.3f} {g[1] - d[1]:>8.3f} {g[2]:>8.3f} {cpu:>10.0f}")
            if router:
                v = run_wrk(router + "/v1/chat/completions", c, args.duration, script)
                d2 = run_wrk(upstream + "/v1/chat/completions", c, args.duration, script)
                table.setdefault(("vllm-router:ratio", prompt_chars, replicas, policy, c), []).append(v[0] / d2[0])
                print(f"{c:>4} {r + 1:>5} {'vllm-rtr':>8} {d2[0]:>11.0f} {v[0]:>12.0f} {v[0] / d2[0]:>6.2f} "
                      f"{d2[1]:>10.3f} {v[1]:>8.3f} {v[1] - d2[1]:>8.3f} {v[2]:>8.3f}")
    stop(procs)


def count_instructions(args: argparse.Namespace, upstream: str, tmp: Path, procs: list[subprocess.Popen],
                       srcs: list[tuple[str, str | None, str]]) -> None:
    """``--instructions``: thousands of instructions per request, by policy x replicas x prompt size."""
    n = args.instructions
    print(f"thousands of instructions per request, the whole gateway under callgrind (windows of {n} and "
          f"{2 * n} requests subtracted, idle time's share taken out), "
          f"{'a base URL per endpoint' if args.distinct_urls else 'every endpoint the same URL'}")
    cols = [(p, r) for p in args.prompt_chars for r in args.replicas]
    for c in args.concurrency:
        print(f"\nconcurrency {c}:")
        print(f"{'policy':<13} {'src':>8} " + " ".join(f"{f'{p}ch/{r}rep':>14}" for p, r in cols)
              + "   (idle kinstr/s, largest fleet)", flush=True)
        for policy in args.policies:
            for label, src, mode in srcs:
                cells, dumps, idle, rounds = [], {}, 0.0, {}
                for p, r in cols:
                    out_dir = Path(tempfile.mkdtemp(prefix="cg-", dir=tmp))
                    proc, url = start_gateway(tmp, upstream, policy=policy, replicas=r, scrape_s=args.scrape_interval_s,
                                              src=src, upstream_model=args.upstream_model, tenants=mode,
                                              redis_url=getattr(args, "redis_url", None),
                                              distinct_urls=args.distinct_urls, wrap=callgrind.valgrind_argv(out_dir))
                    procs.append(proc)
                    try:
                        got = callgrind.measure(proc.pid, int(url.rsplit(":", 1)[1]), out_dir,
                                                body(p, "client-m" if args.upstream_model else "m").encode(), n, c)
                    finally:
                        stop(procs)
                    cells.append(f"{got['kinstr']:>13.1f}k")
                    dumps[(p, r)] = got["dump"]
                    rounds[r] = float(got["round_kinstr"])  # type: ignore[arg-type]
                    idle = float(got["idle_kinstr_per_s"])  # type: ignore[arg-type]
                print(f"{policy:<13} {label:>8} " + " ".join(cells) + f"   ({idle:.0f})", flush=True)
                print(f"{'':<13} {'':>8} one health-check round: "
                      + ", ".join(f"{r} endpoints {k / 1e3:.1f}M ({k / r:.0f}k each)" for r, k in sorted(rounds.items())),
                      flush=True)
                if args.annotate:
                    lo, hi = min(args.replicas), max(args.replicas)
                    for p in args.prompt_chars:
                        callgrind.print_growth(callgrind.annotate(dumps[(p, lo)]), callgrind.annotate(dumps[(p, hi)]),
                                               n, (f"{lo} replicas", f"{hi} replicas, {p} chars"))


def print_table(table: dict, args: argparse.Namespace, srcs: list[tuple[str, str | None, str]]) -> None:
    """Gateway CPU us/request (median over rounds) and RPS ratio, by prompt x replicas x policy."""
    for c in args.concurrency:
        print(f"\nGateway CPU per request (us, median of {args.rounds}) and RPS / direct, concurrency {c}:")
        cols = [(p, r) for p in args.prompt_chars for r in args.replicas]
        print(f"{'policy':<13} {'src':>8} " + " ".join(f"{f'{p}ch/{r}rep':>16}" for p, r in cols))
        for policy in args.policies:
            for label, *_ in srcs:
                cells = []
                for p, r in cols:
                    cpu = table.get((label, p, r, policy, c))
                    ratio = table.get((label + ":ratio", p, r, policy, c))
                    cells.append(f"{statistics.median(cpu):>7.0f} ({statistics.median(ratio):.2f}x)" if cpu else "-")
                print(f"{policy:<13} {label:>8} " + " ".join(f"{x:>16}" for x in cells))


if __name__ == "__main__":
    raise SystemExit(main())
