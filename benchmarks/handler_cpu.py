"""The gateway's request handling alone: CPU microseconds per request, in process.

Drives ``Gateway.handle`` directly (no client socket, no HTTP server parsing) against a null
OpenAI upstream in another process (benchmarks/null_upstream.py), one request at a time or
``--concurrency`` at once, and reports this process's CPU time per request (user + system,
``time.process_time``): the cost of the pipeline, routing, the upstream client and the relay,
less sensitive to other load on the machine than wrk's requests/s. Run it from two source
trees to compare (``--compare-src``: alternating rounds in subprocesses).

``--wiring server`` builds the gateway as ``inferplane serve`` does (``server.py``): the held
queue, tenancy admission and its observer (active with no tenants configured), the
dashboard's rolling windows (``RecentRequests``), the endpoint feed's registry listener and
the queue collector - what users run. A source tree that lacks a part (an older commit) gets
the parts it has. ``--wiring bare`` (the default) is ``Gateway`` alone.

    python benchmarks/handler_cpu.py [--requests 20000] [--rounds 5] [--concurrency 1 32]
        [--policy least_load] [--stream] [--wiring bare|server] [--compare-src PATH]
        [--profile N | --bytecodes N | --instructions]

``--instructions`` counts CPU instructions per request under valgrind (callgrind), the one
figure here that another process's load cannot move (slow: about a minute per run).

``--bytecodes N`` counts bytecodes executed per request (``sys.settrace`` opcode events), and
lists the N functions that run the most of them: deterministic, and closer to CPU than calls.

``--profile N`` counts instead of timing: Python calls per request under cProfile (its
counts do not depend on the machine's load) and the N functions called most, per request,
for each source tree, with their own time under the profiler (wall time, inflated and
load-dependent; ``HANDLER_CPU_PROFILE_SORT=time`` sorts by it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _procs import free_port, stop, wait_ok  # noqa: E402

BODY = b'{"model":"m","messages":[{"role":"user","content":"Say hello in one short sentence, please."}],"max_tokens":16}'


class _Wire:
    def __init__(self, state: object) -> None:
        self.state = state
        self.n = 0
        self.failed: dict[int, int] = {}
        """Answers other than 200, by status: a run with any measured the wrong path."""

    def write(self, data: bytes) -> None:
        self.n += len(data)

    async def drain(self) -> None:
        return None


def _gateway(dep: object, registry: object, wiring: str) -> object:
    """A ``Gateway`` for ``dep``: alone (``bare``), or wired as ``server.py`` wires it (``server``)."""
    from inferplane.config import GatewayConfig
    from inferplane.gateway.app import Gateway

    cfg = GatewayConfig(port=0)
    if wiring == "bare":
        return Gateway(cfg, (dep,), registry)
    from inferplane.routing.held import HeldQueue

    try:
        from inferplane.routing.fair import FairOrdering
        held = HeldQueue(timeout_s=cfg.queue_timeout_s, max_depth=cfg.max_held_requests, ordering=FairOrdering)
    except ImportError:  # an older tree: no tenancy, no observers, no feed
        return Gateway(cfg, (dep,), registry, held=HeldQueue(timeout_s=cfg.queue_timeout_s,
                                                             max_depth=cfg.max_held_requests))
    from inferplane.gateway.tenancy.setup import build_tenancy
    from inferplane.observability.queue_metrics import QueueCollector
    from inferplane.observability.recent import RecentRequests
    from inferplane.placement.feed import EndpointFeed

    tenancy = build_tenancy(cfg)
    gw = Gateway(cfg, (dep,), registry, held=held, admission=tenancy.admission, observers=getattr(tenancy, "request_observers", (tenancy.observer,)))
    gw.metrics.registry.register(tenancy.observer)
    gw.metrics.registry.register(QueueCollector(held))
    EndpointFeed(registry)  # type: ignore[arg-type]
    gw.observers.add(RecentRequests())
    return gw


async def run(upstream: str, policy: str, requests: int, concurrency: int, stream: bool,
              wiring: str = "bare", profile: int = 0) -> float:
    from inferplane.config import DeploymentConfig
    from inferplane.config.models import ReplicaTarget
    from inferplane.gateway.http_limits import HttpLimits, ServerState
    from inferplane.gateway.http_messages import Request, Responder
    from inferplane.routing.registry import Endpoint, EndpointRegistry
    from inferplane.runtimes.registry import get_adapter

    dep = DeploymentConfig(name="m", runtime="openai", replicas=0, policy=policy,
                           endpoints=(ReplicaTarget(url=upstream),))
    registry = EndpointRegistry()
    gw: Any = _gateway(dep, registry, wiring)
    ep = Endpoint(id=registry.new_id("m"), deployment="m", runtime="openai", url=upstream,
                  dialect=get_adapter("openai").dialect_for(dep), capacity=64, managed=False)
    registry.add(ep)
    registry.set_ready(ep, True)
    wire = _Wire(ServerState(HttpLimits()))
    body = BODY[:-1] + b',"stream":true}' if stream else BODY
    headers = {"host": "x", "content-type": "application/json", "content-length": str(len(body))}

    async def one() -> None:
        out = Responder(wire, True)  # type: ignore[arg-type]
        await gw.handle(Request("POST", "/v1/chat/completions", "", dict(headers), body, True), out)
        if out.status != 200:
            wire.failed[out.status] = wire.failed.get(out.status, 0) + 1

    async def worker(n: int) -> None:
        for _ in range(n):
            await one()

    await asyncio.gather(*(worker(50) for _ in range(concurrency)))  # warm
    done = requests // concurrency * concurrency
    if profile < 0:  # --bytecodes: count opcode events per function instead
        counts = _count_bytecodes(worker, requests, concurrency)
        await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
        sys.settrace(None)
        gw.close()
        _check_answered(wire)
        for label, k in sorted(counts.items(), key=lambda kv: -kv[1])[:-profile]:
            print(f"{k / done:8.1f}  {label}")
        return sum(counts.values()) / done
    if profile:
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
        await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
        prof.disable()
        gw.close()
        _check_answered(wire)
        return _print_profile(prof, done, profile)
    t0 = time.process_time()
    await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
    cpu = time.process_time() - t0
    gw.close()
    _check_answered(wire)
    return cpu / done * 1e6


def _check_answered(wire: _Wire) -> None:
    """Refuse a run in which the gateway answered anything but 200: its count would be of the
    error path (a stream answered with JSON, say: 502, then the breaker's 503s)."""
    if wire.failed:
        raise SystemExit(f"the gateway answered {wire.failed} (status: requests), not 200: not the path this "
                         "benchmark measures")


def _count_bytecodes(worker: Any, requests: int, concurrency: int) -> dict[str, int]:
    """Start counting bytecodes executed (``sys.settrace`` opcode events), per function, in every
    frame made from now on; the caller stops it with ``sys.settrace(None)``."""
    counts: dict[str, int] = {}

    def tracer(frame: Any, _event: str, _arg: Any) -> Any:
        frame.f_trace_opcodes = True
        code = frame.f_code
        f = Path(code.co_filename)
        label = f"{getattr(code, 'co_qualname', code.co_name)}  {f.parent.name}/{f.name}"

        def local(_frame: Any, event: str, _arg: Any) -> Any:
            if event == "opcode":
                counts[label] = counts.get(label, 0) + 1
            return local
        return local

    sys.settrace(tracer)
    return counts


def _print_profile(prof: Any, requests: int, top: int) -> float:
    """Print the ``top`` functions by calls per request; return all calls per request.

    cProfile's call counts are deterministic (its times are not, and it inflates them), so
    two trees compare call by call whatever the machine's load.
    """
    counts: dict[str, int] = {}
    own: dict[str, float] = {}
    for e in prof.getstats():  # per code object: pstats would merge every dataclass __init__ ("<string>":2)
        code = e.code
        if isinstance(code, str):
            label = code
        else:
            owner = code.co_qualname if hasattr(code, "co_qualname") else code.co_name
            f = Path(code.co_filename)
            label = f"{owner}  {f.parent.name}/{f.name}:{code.co_firstlineno}"
            if code.co_filename == "<string>":  # a dataclass's generated method: name its class
                label = f"{owner}  <string> ({_dataclass_of(code)})"
        counts[label] = counts.get(label, 0) + e.callcount
        own[label] = own.get(label, 0.0) + e.inlinetime
    by_time = os.environ.get("HANDLER_CPU_PROFILE_SORT") == "time"  # inflated, but shows where time goes
    for label, n in sorted(counts.items(), key=lambda kv: -(own[kv[0]] if by_time else kv[1]))[:top]:
        print(f"{n / requests:8.2f}  {own[label] / requests * 1e6:7.2f} us  {label}")
    import pstats
    merged = sum(v[1] for v in pstats.Stats(prof).stats.values())  # type: ignore[attr-defined]
    print(f"(pstats, every dataclass __init__ merged into one entry: {merged / requests:.1f} calls per request)")
    return sum(counts.values()) / requests


def _instructions(one: list[str], env: dict[str, str], requests: int) -> float:
    """Thousands of instructions per request: one run under callgrind with ``requests`` and one
    with twice as many, subtracted (start-up, imports and warm-up cancel out)."""
    env = {**env, "PYTHONHASHSEED": "0"}
    # once without valgrind first: a tree run for the first time compiles its modules in the
    # shorter run only (a tree without __pycache__ yet), which the subtraction would not cancel
    # (as many requests as the concurrency: fewer than that, and the run fails)
    subprocess.run([sys.executable, *one[:4], one[5], *one[5:]], env=env, check=True, capture_output=True)
    counts = []
    for n in (requests, 2 * requests):
        argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                *one[:4], str(n), *one[5:]]
        err = subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stderr
        counts.append(int(err.rsplit("Collected :", 1)[1].split()[0]))
    return (counts[1] - counts[0]) / requests / 1e3


def _dataclass_of(code: Any) -> str:
    import gc
    for fn in gc.get_referrers(code):
        for cls in gc.get_referrers(fn):
            if isinstance(cls, dict):
                for c in gc.get_referrers(cls):
                    if isinstance(c, type) and c.__dict__.get("__init__") is fn:
                        return c.__name__
    return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--policy", nargs="+", default=["least_load"])
    ap.add_argument("--stream", action="store_true", help="streamed requests (the null upstream streams its chunks, in one write)")
    ap.add_argument("--wiring", choices=["bare", "server"], default="bare",
                    help="server: wire the gateway as `inferplane serve` does (admission, dashboard, feed)")
    ap.add_argument("--compare-src", help="a second source tree, run alternately")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="count Python calls per request (cProfile) and list the N most called, instead of timing")
    ap.add_argument("--bytecodes", type=int, default=0, metavar="N",
                    help="count bytecodes executed per request (sys.settrace) and list the N functions that run "
                         "the most, instead of timing (deterministic; slow: keep --requests near 1000)")
    ap.add_argument("--instructions", action="store_true",
                    help="count CPU instructions per request under valgrind's callgrind instead of timing "
                         "(deterministic, whatever the load; slow: keep --requests near 1000)")
    ap.add_argument("--one", nargs=7, help=argparse.SUPPRESS)  # upstream policy requests concurrency stream wiring profile
    args = ap.parse_args()
    if args.bytecodes:
        args.profile = -args.bytecodes  # --one's last argument: < 0 counts bytecodes
    if args.one:
        import uvloop
        up, policy, n, c, s, wiring, top = args.one
        print(uvloop.run(run(up, policy, int(n), int(c), s == "1", wiring, int(top))))
        return 0
    up_port = free_port()
    procs = [subprocess.Popen([sys.executable, str(HERE / "null_upstream.py"), str(up_port)])]
    upstream = f"http://127.0.0.1:{up_port}"
    srcs = [("compare", str(Path(args.compare_src).resolve()))] if args.compare_src else []
    srcs.append(("this", None))
    try:
        wait_ok(upstream + "/health")
        print(f"requests={args.requests} rounds={args.rounds} wiring={args.wiring} load(1m)={os.getloadavg()[0]:.2f}")
        results: dict[tuple[str, str, int], list[float]] = {}
        for policy in args.policy:
            for c in args.concurrency:
                for _ in range(args.rounds):
                    for label, src in srcs:
                        env = dict(os.environ)
                        if src:
                            env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
                        one = [__file__, "--one", upstream, policy, str(args.requests), str(c),
                               "1" if args.stream else "0", args.wiring, str(args.profile)]
                        if args.instructions:
                            results.setdefault((policy, label, c), []).append(_instructions(one, env, args.requests))
                            continue
                        out = subprocess.run([sys.executable, *one], env=env, check=True, capture_output=True,
                                             text=True).stdout
                        if args.profile:
                            what = "bytecodes" if args.profile < 0 else "calls"
                            print(f"--- {label} ({policy}, c={c}): {what} per request, most first")
                            print(out.rstrip())
                        results.setdefault((policy, label, c), []).append(float(out.strip().splitlines()[-1]))
        what = "bytecodes/req median" if args.profile < 0 else "calls/req median" if args.profile else "kinstr/req median" if args.instructions else "CPU us/req median"
        print(f"{'policy':<12} {'conc':>4} {'src':>8} {what:>18} {'min':>6}  all")
        for (policy, label, c), xs in results.items():
            print(f"{policy:<12} {c:>4} {label:>8} {statistics.median(xs):>18.1f} {min(xs):>6.1f}  "
                  + " ".join(f"{x:.1f}" if args.profile or args.instructions else f"{x:.0f}" for x in xs))
        print(f"load(1m) after={os.getloadavg()[0]:.2f}")
    finally:
        stop(procs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
