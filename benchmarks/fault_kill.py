"""Replicas SIGKILLed every few seconds under a bounded load (issue 10's campaign, kept).

Starts `inferplane serve` with N embedded (SmolLM2) replicas, runs plain clients that
honour Retry-After and stream clients, and every ``--kill-every`` seconds SIGKILLs one
ready replica's runtime process (a child of the serve this script started, by PID).
Prints requests sent / succeeded / failed (non-streamed should be 0 failed), how each
stream ended, and the back-up time of every kill (kill -> that replica ready again).

    python benchmarks/fault_kill.py [--duration 300] [--kill-every 10] [--replicas 3]
        [--plain 2] [--streams 1] [--max-tokens 16]

Everything shares this machine's cores; the load is bounded by the client count.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import tempfile
import threading
import time
from pathlib import Path

from fault_load import Load, Serve


def _watch_backup(sp: Serve, ep_id: str, old_pid: int, t_kill: float, out: dict[int, float], index: int,
                  stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            if any(e["id"] == ep_id and e["ready"] and e["pid"] not in (None, old_pid) for e in sp.endpoints()):
                out[index] = time.monotonic() - t_kill
                return
        except OSError:
            pass
        time.sleep(0.1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=300)
    ap.add_argument("--kill-every", type=float, default=10)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--plain", type=int, default=2)
    ap.add_argument("--streams", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="fault-kill-"))
    print(f"replicas={args.replicas} duration={args.duration:.0f}s kill every {args.kill_every:.0f}s "
          f"clients: {args.plain} plain + {args.streams} stream, cores={os.cpu_count()} "
          f"load(1m) before={os.getloadavg()[0]:.2f}")
    sp = Serve(["--replicas", str(args.replicas), "--parallel", "2", "--threads", "1", "--policy", "least_load"], tmp)
    load = Load(sp.url, "smollm2", plain=args.plain, streams=args.streams, max_tokens=args.max_tokens)
    back: dict[int, float] = {}
    kills = 0
    watchers: list[threading.Thread] = []
    stop = threading.Event()
    try:
        load.start()
        t_end = time.monotonic() + args.duration
        while time.monotonic() + args.kill_every <= t_end:
            time.sleep(args.kill_every)
            ready = [e for e in sp.endpoints() if e["ready"] and e["pid"]]
            if not ready:
                print(f"  t={args.duration - (t_end - time.monotonic()):.0f}s: no ready replica to kill")
                continue
            victim = rng.choice(ready)
            t_kill = time.monotonic()
            try:
                os.kill(victim["pid"], signal.SIGKILL)
            except ProcessLookupError:
                continue
            kills += 1
            w = threading.Thread(target=_watch_backup, args=(sp, victim["id"], victim["pid"], t_kill, back, kills, stop),
                                 daemon=True)
            w.start()
            watchers.append(w)
        time.sleep(max(0.0, t_end - time.monotonic()))
        load.stop()
        for w in watchers:
            w.join(60)
        stop.set()
        print(load.summary())
        backups = [back[i] for i in sorted(back)]  # in kill order
        if len(backups) < kills:
            print(f"  {kills - len(backups)} killed replica(s) not back before the end")
        if backups:
            print(f"kills {kills}; back-up time per kill (s): " + " ".join(f"{b:.1f}" for b in backups))
            print(f"  back-up median {statistics.median(backups):.1f} s, max {max(backups):.1f} s, "
                  f"first {backups[0]:.1f} s, last {backups[-1]:.1f} s")
        print(f"gateway retries: {sp.metric('inferplane_retries_total'):.0f}, upstream errors: "
              f"{sp.metric('inferplane_upstream_errors_total'):.0f}")
        print(f"load(1m) after={os.getloadavg()[0]:.2f}")
    finally:
        stop.set()
        load.stop()
        sp.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
