"""Autoscaling simulator: SLO attainment vs replica-seconds for fixed and autoscaled replica sets.

Replays a bursty workload - ShareGPT first turns (prompt and reply lengths), gamma arrivals
in alternating quiet and busy phases, ~10 minutes - against simulated replicas whose start
time and throughput are the embedded runtime's as measured on this machine (pass yours:
``--start-s --prefill-tps --decode-tps``; benchmarks/autoscale_live.py prints them).
Compares, on the same arrivals:

- fixed-max: ``--max-replicas`` replicas all the time;
- fixed-1: one replica;
- kubeai: KubeAI's policy (internal/modelautoscaler): every 10 s, ceil(moving average of
  active requests over ``timeWindow`` / targetRequests); up at once, down only after
  scaleDownDelay / interval consecutive lower readings; 0 -> 1 on the first request;
  run with its default 10 min window and with shorter ones;
- ours: inferplane's ``ScalingPolicy`` (the class the gateway runs), fed the same signals
  the gateway reads (in flight, held, runtime waiting, TTFT p95).

Per policy: SLO attainment (share of requests with TTFT <= ``--ttft-slo-s``, failures
count as misses), TTFT p95, replica-seconds (starting and draining included), requests
failed (held past ``--queue-timeout-s``), scale events (changes of the desired count).

Replica model: ``--slots`` sequences in parallel (continuous batching); with k running,
each gets ``batch_gain(k)/k`` of the single-sequence prefill/decode rate; more requests
wait in the replica's queue. Routing: fewest in flight. No replica ready: the request is
held in the gateway until one is. Scale-down drains the replica with fewest in flight.

    PYTHONPATH=src python benchmarks/autoscale_sim.py            # ~10 s
    PYTHONPATH=src python benchmarks/autoscale_sim.py --seeds 10 --start-s 2 --prefill-tps 150

Prints numbers only; nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import collections
import math
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

try:
    import inferplane  # noqa: F401
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from inferplane.autoscale.policy import ScalingPolicy, Signals
from inferplane.bench.schedule import stage_offsets
from inferplane.config.scaling import AutoscaleConfig

DT = 0.05


@dataclass
class Req:
    arrival: float
    isl: int
    osl: int
    prefill_left: float = 0.0
    decode_left: float = 0.0
    first_token: float | None = None
    done: float | None = None
    failed: bool = False

    def __post_init__(self) -> None:
        self.prefill_left, self.decode_left = float(self.isl), float(self.osl)


@dataclass
class Replica:
    started: float
    ready_at: float
    running: list[Req] = field(default_factory=list)
    waiting: collections.deque[Req] = field(default_factory=collections.deque)
    draining: bool = False
    stopped: float | None = None

    def in_flight(self) -> int:
        return len(self.running) + len(self.waiting)


@dataclass
class Params:
    start_s: float
    prefill_tps: float
    decode_tps: float
    slots: int
    batch_exponent: float
    max_replicas: int
    target: float
    queue_timeout_s: float
    ttft_slo_s: float
    drain_timeout_s: float = 60.0


@dataclass
class Result:
    name: str
    attainment: float
    ttft_p95: float
    replica_seconds: float
    failed: int
    scale_events: int
    requests: int


class Sim:
    def __init__(self, p: Params, reqs: list[Req], initial: int) -> None:
        self.p = p
        self.pending = collections.deque(sorted(reqs, key=lambda r: r.arrival))
        self.reqs = reqs
        self.now = 0.0
        self.replicas: list[Replica] = [Replica(0.0, 0.0) for _ in range(initial)]  # warm at t=0
        self.held: collections.deque[Req] = collections.deque()
        self.desired = initial
        self.scale_events = 0
        self.ttfts: collections.deque[tuple[float, float]] = collections.deque()

    # -- control -------------------------------------------------------------------------
    def set_desired(self, n: int) -> None:
        n = max(0, min(self.p.max_replicas, n))
        if n != self.desired:
            self.scale_events += 1
        self.desired = n

    def active(self) -> list[Replica]:
        return [r for r in self.replicas if r.stopped is None and not r.draining]

    def reconcile(self) -> None:
        act = self.active()
        for _ in range(self.desired - len(act)):
            self.replicas.append(Replica(self.now, self.now + self.p.start_s))
        if len(act) > self.desired:
            victims = sorted(act, key=lambda r: (self.now >= r.ready_at, r.in_flight(), -r.started))
            for r in victims[: len(act) - self.desired]:
                r.draining = True
                r.drain_deadline = self.now + self.p.drain_timeout_s  # type: ignore[attr-defined]

    def signals(self) -> Signals:
        ready = [r for r in self.active() if self.now >= r.ready_at]
        starting = [r for r in self.active() if self.now < r.ready_at]
        live = [r for r in self.replicas if r.stopped is None]
        while self.ttfts and self.ttfts[0][0] < self.now - 15:
            self.ttfts.popleft()
        vals = sorted(v for _, v in self.ttfts)
        p95 = vals[min(len(vals) - 1, int(0.95 * len(vals)))] if len(vals) >= 5 else None
        return Signals(now=self.now, ready=len(ready), starting=len(starting),
                       in_flight=sum(r.in_flight() for r in live), held=len(self.held),
                       runtime_running=sum(len(r.running) for r in ready),
                       runtime_waiting=sum(len(r.waiting) for r in ready), ttft_p95_s=p95)

    # -- data plane ----------------------------------------------------------------------
    def _dispatch(self, req: Req) -> bool:
        ready = [r for r in self.active() if self.now >= r.ready_at]
        if not ready:
            return False
        r = min(ready, key=Replica.in_flight)
        (r.running if len(r.running) < self.p.slots else r.waiting).append(req)
        return True

    def step(self) -> None:
        p = self.p
        while self.pending and self.pending[0].arrival <= self.now:
            req = self.pending.popleft()
            if not self._dispatch(req):
                self.held.append(req)
        while self.held and self.now - self.held[0].arrival > p.queue_timeout_s:
            self.held.popleft().failed = True
        if self.held and any(self.now >= r.ready_at for r in self.active()):
            for req in list(self.held):
                self._dispatch(req)
            self.held.clear()
        for r in self.replicas:
            if r.stopped is not None or self.now < r.ready_at:
                continue
            k = len(r.running)
            if k:
                share = k ** p.batch_exponent / k
                for req in list(r.running):
                    if req.prefill_left > 0:
                        req.prefill_left -= p.prefill_tps * share * DT
                        if req.prefill_left <= 0:
                            req.first_token = self.now + DT
                            self.ttfts.append((self.now, req.first_token - req.arrival))
                    else:
                        req.decode_left -= p.decode_tps * share * DT
                        if req.decode_left <= 0:
                            req.done = self.now + DT
                            r.running.remove(req)
                while r.waiting and len(r.running) < p.slots:
                    r.running.append(r.waiting.popleft())
            if r.draining and (not r.in_flight() or self.now >= r.drain_deadline):  # type: ignore[attr-defined]
                for req in [*r.running, *r.waiting]:
                    req.failed = True
                r.stopped = self.now
        self.now += DT

    def result(self, name: str, end: float) -> Result:
        rs = sum((r.stopped if r.stopped is not None else end) - r.started for r in self.replicas)
        ttfts = [r.first_token - r.arrival for r in self.reqs if r.first_token is not None and not r.failed]
        ok = sum(1 for r in self.reqs if not r.failed and r.first_token is not None
                 and r.first_token - r.arrival <= self.p.ttft_slo_s)
        misses = [math.inf] * sum(1 for r in self.reqs if r.failed or r.first_token is None)
        every = sorted(ttfts + misses)
        p95 = every[min(len(every) - 1, int(0.95 * len(every)))] if every else math.nan
        return Result(name, ok / len(self.reqs), p95, rs, sum(1 for r in self.reqs if r.failed),
                      self.scale_events, len(self.reqs))


Decider = Callable[[Sim], None]


def run(name: str, p: Params, reqs: list[Req], initial: int, decide: Decider | None, interval_s: float,
        end: float) -> Result:
    sim = Sim(p, [Req(r.arrival, r.isl, r.osl) for r in reqs], initial)
    next_tick = 0.0
    while sim.now < end or sim.pending or any(r.in_flight() for r in sim.replicas if r.stopped is None) or sim.held:
        if decide is not None and sim.now >= next_tick:
            decide(sim)
            next_tick += interval_s
        sim.reconcile()
        sim.step()
        if sim.now > end + 600:
            break
    return sim.result(name, sim.now)


def ours(cfg: AutoscaleConfig) -> Decider:
    policy = ScalingPolicy(cfg)

    def decide(sim: Sim) -> None:
        sim.set_desired(policy.decide(sim.signals(), sim.desired).desired)
        if sim.desired == 0 and sim.held:
            sim.set_desired(1)

    return decide


def kubeai(*, target: float, window_s: float, interval_s: float = 10.0, scale_down_delay_s: float = 30.0,
           min_replicas: int = 1) -> Decider:
    history: collections.deque[float] = collections.deque(maxlen=max(1, math.ceil(window_s / interval_s)))
    history.extend([0.0] * history.maxlen)  # KubeAI's moving average starts from a zero-filled window
    required = math.ceil(scale_down_delay_s / interval_s)
    consecutive = 0

    def decide(sim: Sim) -> None:
        nonlocal consecutive
        s = sim.signals()
        history.append(float(s.in_flight + s.held))
        want = max(min_replicas, math.ceil(statistics.fmean(history) / target))
        if want > sim.desired:
            consecutive = 0
            sim.set_desired(want)
        elif want < sim.desired:
            consecutive += 1
            if consecutive >= required:
                consecutive = 0
                sim.set_desired(want)
        else:
            consecutive = 0
        if sim.desired == 0 and sim.held:  # its proxy scales 0 -> 1 on a request
            sim.set_desired(1)

    return decide


def workload(seed: int, phases: str, burstiness: float, max_input: int, max_tokens: int) -> tuple[list[Req], float]:
    from inferplane.bench.workloads import sharegpt

    stages = [(float(r), float(d)) for r, d in (x.split(":") for x in phases.split(","))]
    offsets = stage_offsets(stages, "gamma", burstiness=burstiness, seed=seed)
    wl = sharegpt(len(offsets), seed=seed, max_tokens=max_tokens, max_input=max_input, max_total=max_input + max_tokens)
    reqs = [Req(t, r.input_tokens_estimate or 1, r.max_tokens) for t, r in zip(offsets, wl.requests, strict=True)]
    return reqs, sum(d for _, d in stages)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start-s", type=float, default=5.0, help="replica start to ready, s (measured: 5.0 loaded box)")
    ap.add_argument("--prefill-tps", type=float, default=35.0, help="prompt tokens/s of one sequence (measured: 35)")
    ap.add_argument("--decode-tps", type=float, default=15.0, help="output tokens/s of one sequence (measured: 15)")
    ap.add_argument("--batch-exponent", type=float, default=1.0,
                    help="k sequences run at k**e / k each (measured on 1 loaded thread: 1.0, no batching gain)")
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--max-replicas", type=int, default=4)
    ap.add_argument("--target", type=float, default=2.0, help="target in flight per replica (ours and KubeAI's)")
    ap.add_argument("--ttft-slo-s", type=float, default=15.0)
    ap.add_argument("--queue-timeout-s", type=float, default=60.0)
    ap.add_argument("--phases", default="0.03:90,0.3:60,0.03:90,0.3:60,0.03:90,0.3:60,0.03:90,0.3:60",
                    help="RATE:SECONDS stages (quiet and busy); ~10 min")
    ap.add_argument("--burstiness", type=float, default=0.5, help="gamma shape (<1 = burstier than Poisson)")
    ap.add_argument("--max-input", type=int, default=512)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--scale-down-delay-s", type=float, default=180.0,
                    help="ours' scale_down_delay_s (the config default is 60; see docs/autoscaling.md)")
    ap.add_argument("--sweep", default="0.5,1,2,3,4", help="targets to sweep for both autoscalers ('' = none)")
    args = ap.parse_args()
    p = Params(args.start_s, args.prefill_tps, args.decode_tps, args.slots, args.batch_exponent, args.max_replicas,
               args.target, args.queue_timeout_s, args.ttft_slo_s)
    def ours_at(target: float, **extra: object) -> AutoscaleConfig:
        fields: dict[str, object] = {"scale_down_delay_s": args.scale_down_delay_s, **extra}
        return AutoscaleConfig(min_replicas=1, max_replicas=args.max_replicas, target_in_flight_per_replica=target,
                               interval_s=1.0, **fields)  # type: ignore[arg-type]

    policies: list[tuple[str, int, Callable[[], Decider | None], float]] = [
        ("fixed-max", args.max_replicas, lambda: None, 1.0),
        ("fixed-1", 1, lambda: None, 1.0),
        ("kubeai", 1, lambda: kubeai(target=args.target, window_s=600), 10.0),
        ("ours", 1, lambda: ours(ours_at(args.target)), 1.0),
        ("ours (min 0)", 1, lambda: ours(ours_at(args.target).model_copy(
            update={"min_replicas": 0, "scale_to_zero_after_s": 60})), 1.0),
        ("ours (ttft_slo_s)", 1, lambda: ours(ours_at(args.target, ttft_slo_s=args.ttft_slo_s)), 1.0),
        ("ours (scale_down_delay_s 60)", 1, lambda: ours(ours_at(args.target, scale_down_delay_s=60)), 1.0),
    ]
    sweep = [float(x) for x in args.sweep.split(",")] if args.sweep else []
    for t in sweep:
        policies.append((f"ours target={t:g}", 1, lambda t=t: ours(ours_at(t)), 1.0))
        for w in (10, 60, 600):
            policies.append((f"kubeai target={t:g} window={w}s", 1, lambda t=t, w=w: kubeai(target=t, window_s=w), 10.0))
    rows: dict[str, list[Result]] = collections.defaultdict(list)
    n_reqs = 0
    for seed in range(args.seeds):
        reqs, end = workload(seed, args.phases, args.burstiness, args.max_input, args.max_tokens)
        n_reqs += len(reqs)
        for name, initial, make, interval in policies:
            rows[name].append(run(name, p, reqs, initial, make(), interval, end))
    print(f"{args.seeds} seeds, {n_reqs} requests; replica: start {p.start_s} s, prefill {p.prefill_tps} tok/s, "
          f"decode {p.decode_tps} tok/s, {p.slots} slots; TTFT SLO {p.ttft_slo_s} s; max {p.max_replicas} replicas; "
          f"target {args.target:g} in flight per replica; ours' scale_down_delay_s {args.scale_down_delay_s:g}")
    print(f"{'policy':<34} {'SLO att.':>8} {'TTFT p95':>9} {'replica-s':>10} {'failed':>7} {'scale ev.':>9}")
    mean: dict[str, tuple[float, float, float]] = {}
    for name, results in rows.items():
        att = statistics.fmean(r.attainment for r in results)
        p95 = statistics.median(r.ttft_p95 for r in results)
        rs = statistics.fmean(r.replica_seconds for r in results)
        failed = sum(r.failed for r in results)
        events = statistics.fmean(r.scale_events for r in results)
        mean[name] = (att, rs, events)
        print(f"{name:<34} {att:>7.1%} {p95:>8.1f}s {rs:>10.0f} {failed:>7} {events:>9.1f}")
    fa, frs, _ = mean["fixed-max"]
    oa, ors, _ = mean["ours"]
    print(f"\nours vs fixed-max: {oa / fa:.1%} of its SLO attainment at {ors / frs:.1%} of its replica-seconds "
          f"(target: >= 95 % at <= 60 %)")
    print("at equal attainment (each 'ours' row vs the KubeAI settings reaching at least its attainment - 0.5 pp):")
    for name in [n for n in mean if n.startswith("ours")]:
        a, r, e = mean[name]
        rivals = [(mean[k][2], k) for k in mean if k.startswith("kubeai") and mean[k][0] >= a - 0.005]
        if not rivals:
            print(f"  {name}: {a:.1%}, {e:.1f} scale events - no KubeAI setting reaches this attainment")
            continue
        ke, k = min(rivals)
        print(f"  {name}: {a:.1%}, {e:.1f} scale events, {r:.0f} replica-s  vs  {k}: {mean[k][0]:.1%}, "
              f"{ke:.1f} scale events, {mean[k][1]:.0f} replica-s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
