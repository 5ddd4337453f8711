"""One replica frozen with SIGSTOP for a while under a bounded load (issue 10.7's run, kept).

Starts `inferplane serve` with N embedded (SmolLM2) replicas and a load of plain
clients (honouring Retry-After) and stream clients; after ``--warmup`` s it SIGSTOPs one
replica's runtime process (a child of the serve this script started, by PID) for
``--stop-for`` s, then SIGCONTs it. Prints: the latency of plain requests that started
while it was frozen (how long a request sat on it), how soon the gateway took it out of
the pool, how each stream ended, and how soon it was back after SIGCONT.

    python benchmarks/fault_stop.py [--stop-for 30] [--replicas 3] [--plain 3] [--streams 1]
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
from pathlib import Path

from fault_load import Load, Serve


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stop-for", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--after", type=float, default=10, help="seconds of load after SIGCONT")
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--plain", type=int, default=3)
    ap.add_argument("--streams", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=16)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fault-stop-"))
    print(f"replicas={args.replicas} SIGSTOP one for {args.stop_for:.0f}s; clients: {args.plain} plain + "
          f"{args.streams} stream; cores={os.cpu_count()} load(1m) before={os.getloadavg()[0]:.2f}")
    sp = Serve(["--replicas", str(args.replicas), "--parallel", "2", "--threads", "1", "--policy", "least_load"], tmp)
    load = Load(sp.url, "smollm2", plain=args.plain, streams=args.streams, max_tokens=args.max_tokens)
    victim = None
    try:
        load.start()
        time.sleep(args.warmup)
        victim = next(e for e in sp.endpoints() if e["ready"] and e["pid"])
        t_stop = time.monotonic()
        os.kill(victim["pid"], signal.SIGSTOP)
        out_after = None
        while time.monotonic() - t_stop < args.stop_for:
            if out_after is None and not any(e["id"] == victim["id"] and e["ready"] for e in sp.endpoints()):
                out_after = time.monotonic() - t_stop
            time.sleep(0.1)
        t_cont = time.monotonic()
        os.kill(victim["pid"], signal.SIGCONT)
        back_after = None
        while time.monotonic() - t_cont < args.after:
            if back_after is None and any(e["id"] == victim["id"] and e["ready"] for e in sp.endpoints()):
                back_after = time.monotonic() - t_cont
            time.sleep(0.1)
        load.stop()
        during = [d for t0, d in load.latencies if t0 < t_cont and t0 + d > t_stop]
        streams = [d for t0, d, _ in load.stream_times if t0 < t_cont and t0 + d > t_stop]
        print(load.summary())
        print(f"plain requests in flight while frozen: {len(during)}; latency p50 {_pct(during, 0.5):.2f} s, "
              f"p99 {_pct(during, 0.99):.2f} s, max {max(during, default=float('nan')):.2f} s; "
              f"over 5 s: {sum(d > 5 for d in during)}")
        print(f"streams in flight while frozen: {len(streams)}; longest {max(streams, default=float('nan')):.2f} s "
              f"(a normal one: {_pct([d for _, d, _ in load.stream_times], 0.5):.2f} s)")
        print("frozen replica taken out of the pool after " +
              (f"{out_after:.1f} s" if out_after is not None else f"- (still in after {args.stop_for:.0f} s)"))
        print("back in the pool after SIGCONT: " +
              (f"{back_after:.1f} s" if back_after is not None else f"- (not within {args.after:.0f} s)"))
        kinds = ("frozen", "timeout", "stream_stalled", "stream_broken")
        print(f"gateway: retries {sp.metric('inferplane_retries_total'):.0f}; upstream errors of the frozen replica: "
              + ", ".join(f"{k} {sp.metric_where('inferplane_upstream_errors_total', victim['id'], k):.0f}"
                          for k in kinds))
        print(f"load(1m) after={os.getloadavg()[0]:.2f}")
    finally:
        if victim is not None:
            try:
                os.kill(victim["pid"], signal.SIGCONT)
            except ProcessLookupError:
                pass
        load.stop()
        sp.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
