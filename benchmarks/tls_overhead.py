"""What TLS and an upstream API key cost on the gateway's hot path.

Three gateways in front of the null upstream (benchmarks/null_upstream.py), measured with wrk in
alternating rounds at each concurrency:

- ``plain``: HTTP listener, http:// upstream (the baseline);
- ``https-upstream``: HTTP listener, https:// upstream (a test CA in ``ca_file``) that wants an
  API key (``api_key_env``);
- ``tls-listener``: HTTPS listener (``gateway.tls``), http:// upstream.

Prints requests/s, p50/p99 and the gateway's CPU per request (user + system from /proc, the least
noisy figure on a shared machine). Keep-alive everywhere (wrk's connections, the pool's), so TLS
handshakes are paid once per connection and the numbers show the per-request cost of encryption.
The CA and certificate are made with the openssl command line in a temporary folder.

    python benchmarks/tls_overhead.py [--duration 6] [--rounds 2] [--concurrency 1 32]
"""

from __future__ import annotations

import argparse
import os
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from _procs import free_port, stop, wait_ok  # noqa: E402

from tls_certs import make_certs  # noqa: E402

BODY = '{"model":"m","messages":[{"role":"user","content":"Say hello in one short sentence, please."}],"max_tokens":16}'
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    assert m, text
    return float(m.group(1)) * _UNITS[m.group(2)]


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(url: str, conns: int, duration: int, script: Path, pid: int) -> tuple[float, float, float, float]:
    """(req/s, p50 ms, p99 ms, gateway CPU µs per request)."""
    cpu0 = _cpu_s(pid)
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    n = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in out or "Socket errors" in out:
        print("  wrk reported errors:", [ln for ln in out.splitlines() if "Non-2xx" in ln or "Socket" in ln])
    return (float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            _ms(re.search(r"\s50%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
            _ms(re.search(r"\s99%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
            (_cpu_s(pid) - cpu0) / max(n, 1) * 1e6)


def _gateway(tmp: Path, name: str, endpoint: str, extra_endpoint: str, gateway_extra: str,
             env: dict[str, str], procs: list[subprocess.Popen]) -> tuple[int, str]:
    port = free_port()
    cfg = tmp / f"{name}.yaml"
    cfg.write_text(f"gateway:\n  port: {port}\n  scrape_interval_s: 60\n{gateway_extra}deployments:\n"
                   f"  - name: m\n    runtime: openai\n    replicas: 0\n    policy: least_load\n"
                   f"    endpoints:\n      - url: {endpoint}\n{extra_endpoint}")
    proc = subprocess.Popen([sys.executable, "-m", "inferplane", "serve", "--config", str(cfg), "--log-dir", str(tmp)],
                            stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env={**os.environ, **env})
    procs.append(proc)
    scheme = "https" if gateway_extra else "http"
    return proc.pid, f"{scheme}://127.0.0.1:{port}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    args = ap.parse_args()
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        certs = make_certs(tmp / "certs")
        env = {"BENCH_UPSTREAM_KEY": "sk-bench-0123456789"}
        plain_port, tls_port = free_port(), free_port()
        null = [sys.executable, str(HERE / "null_upstream.py")]
        procs.append(subprocess.Popen([*null, str(plain_port)]))
        procs.append(subprocess.Popen([*null, str(tls_port), str(certs.cert), str(certs.key), "BENCH_UPSTREAM_KEY"],
                                      env={**os.environ, **env}))
        try:
            wait_ok(f"http://127.0.0.1:{plain_port}/health")
            gateways = {
                "plain": _gateway(tmp, "plain", f"http://127.0.0.1:{plain_port}", "", "", {}, procs),
                "https-upstream": _gateway(tmp, "https-up", f"https://127.0.0.1:{tls_port}",
                                           f"        ca_file: {certs.ca}\n        api_key_env: BENCH_UPSTREAM_KEY\n",
                                           "", env, procs),
                "tls-listener": _gateway(tmp, "tls-listen", f"http://127.0.0.1:{plain_port}", "",
                                         f"  tls:\n    cert_file: {certs.cert}\n    key_file: {certs.key}\n",
                                         {}, procs),
            }
            ctx = ssl.create_default_context(cafile=certs.ca)
            for _pid, url in gateways.values():
                _wait_ready(url, ctx)
            script = tmp / "post.lua"
            script.write_text(f'wrk.method = "POST"\nwrk.body = \'{BODY}\'\n'
                              'wrk.headers["Content-Type"] = "application/json"\n')
            load = os.getloadavg()[0]
            print(f"duration={args.duration}s rounds={args.rounds} cores={os.cpu_count()} load(1m) before={load:.2f}")
            print(f"{'conc':>4} {'round':>5} {'gateway':>15} {'rps':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/req':>10}")
            cpu: dict[tuple[str, int], list[float]] = {}
            for conc in args.concurrency:
                for rnd in range(1, args.rounds + 1):
                    for name, (pid, url) in gateways.items():
                        rps, p50, p99, us = _wrk(url + "/v1/chat/completions", conc, args.duration, script, pid)
                        cpu.setdefault((name, conc), []).append(us)
                        print(f"{conc:>4} {rnd:>5} {name:>15} {rps:>8.0f} {p50:>7.3f} {p99:>7.3f} {us:>10.0f}")
            print("\nGateway CPU per request (µs, median over rounds):")
            for conc in args.concurrency:
                base = statistics.median(cpu[("plain", conc)])
                row = []
                for name in gateways:
                    med = statistics.median(cpu[(name, conc)])
                    row.append(f"{name} {med:.0f} ({med - base:+.0f})")
                print(f"  c={conc}: " + ", ".join(row))
            print(f"load(1m) after={os.getloadavg()[0]:.2f}")
        finally:
            stop(procs)
    return 0


def _wait_ready(url: str, ctx: ssl.SSLContext, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/ready", timeout=1, context=ctx) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


if __name__ == "__main__":
    sys.exit(main())
