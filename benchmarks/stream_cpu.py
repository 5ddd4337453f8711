"""The gateway's CPU per streamed chunk and per streamed request, in process, on each surface.

Drives ``Gateway.handle`` with streamed chat requests against an in-process upstream (the pool's
``MemoryConnector``: the same HTTP parser and chunked decoding as a socket, no syscalls) that
answers each request with an OpenAI SSE stream of ``--chunks`` content chunks, each delivered in
its own loop callback (one ``data_received`` per chunk, as a runtime's chunks 10 ms apart arrive),
then the final chunk with usage and ``data: [DONE]``. The client side is an in-memory wire.
Measures streams with ``--chunks`` and with 1 chunk: the difference divided by the extra chunks is
the cost of one relayed chunk (upstream read -> client write, translated on the Anthropic and
Ollama surfaces); the 1-chunk figure less one chunk is the cost of the request around it.

    python benchmarks/stream_cpu.py [--surface openai anthropic ollama] [--chunks 100] [--streams 200]
        [--rounds 3] [--instructions | --calls] [--compare-src PATH]

``--instructions`` counts CPU instructions under valgrind's callgrind instead of timing (a figure
another process's load cannot move; slow: minutes per row, keep ``--streams`` near 20);
``--calls`` counts Python calls (cProfile), deterministic and quick. Without either, CPU time
(``time.process_time``), best of ``--rounds``. ``--compare-src`` runs a second ``src``
tree too, alternating (e.g. ``git archive REF src | tar -x -C DIR``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

_CHUNK = (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
          b'"delta":{"content":" token"},"finish_reason":null}]}\n\n')
_FINAL = (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
          b'"delta":{},"finish_reason":"stop"}]}\n\n'
          b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
          b'"usage":{"prompt_tokens":5,"completion_tokens":%d,"total_tokens":%d}}\n\ndata: [DONE]\n\n')
_REQUESTS = {
    "openai": ("/v1/chat/completions", {},
               b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}'),
    "anthropic": ("/v1/messages", {"anthropic-version": "2023-06-01"},
                  b'{"model":"m","max_tokens":256,"messages":[{"role":"user","content":"hi"}],"stream":true}'),
    "ollama": ("/api/chat", {}, b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}'),
}


async def _run(surface: str, chunks: int, streams: int, calls: bool = False) -> float:
    """CPU seconds for ``streams`` streams of ``chunks`` chunks each (after a warm-up); with
    ``calls``, the Python calls they made (cProfile's count: deterministic) instead."""
    from inferplane.config import DeploymentConfig, GatewayConfig
    from inferplane.config.models import ReplicaTarget
    from inferplane.gateway.app import Gateway
    from inferplane.gateway.http_limits import HttpLimits, ServerState
    from inferplane.gateway.http_messages import Request, Responder
    from inferplane.gateway.memory_transport import MemoryConnector, MemoryRequest, MemoryWire
    from inferplane.routing.registry import Endpoint, EndpointRegistry
    from inferplane.runtimes.registry import get_adapter

    final = _FINAL % (chunks, chunks + 5)

    async def app(_req: MemoryRequest, wire: MemoryWire) -> None:
        wire.start()
        for _ in range(5):  # the head's read, the relay's task up to forwarding
            await asyncio.sleep(0)
        for _ in range(chunks):  # each delivery is its own loop callback: one read (data_received) per chunk
            wire.chunk(_CHUNK)
        wire.chunk(final)
        wire.end()

    dep = DeploymentConfig(name="m", runtime="openai", replicas=0, endpoints=(ReplicaTarget(url="http://up:80"),))
    registry = EndpointRegistry()
    gw = Gateway(GatewayConfig(port=0), (dep,), registry, connect=MemoryConnector(app))
    ep = Endpoint(id=registry.new_id("m"), deployment="m", runtime="openai", url="http://up:80",
                  dialect=get_adapter("openai").dialect_for(dep), capacity=64, managed=False)
    registry.add(ep)
    registry.set_ready(ep, True)

    class Wire:
        state = ServerState(HttpLimits())
        n = 0

        def write(self, data: bytes) -> bool:
            self.n += len(data)
            return False

        async def drain(self) -> None:
            return None

    wire = Wire()
    path, extra, body = _REQUESTS[surface]
    headers = {"host": "x", "content-type": "application/json", "content-length": str(len(body)), **extra}

    async def some(n: int) -> None:
        for _ in range(n):
            await gw.handle(Request("POST", path, "", dict(headers), body, True), Responder(wire, True))  # type: ignore[arg-type]

    await some(20)
    if wire.n < 20 * chunks * len(b" token"):
        raise RuntimeError(f"{surface}: the streams did not come through ({wire.n} bytes)")
    if calls:
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
        await some(streams)
        prof.disable()
        gw.close()
        return float(sum(e.callcount for e in prof.getstats()))
    t0 = time.process_time()
    await some(streams)
    cpu = time.process_time() - t0
    gw.close()
    return cpu


def _one(argv: list[str]) -> None:
    import uvloop
    surface, chunks, streams, calls = argv[0], int(argv[1]), int(argv[2]), argv[3] == "calls"
    print(uvloop.run(_run(surface, chunks, streams, calls)))


def _measure(src: str | None, surface: str, chunks: int, streams: int, how: str) -> float:
    """CPU microseconds (``time``), thousands of instructions (``instructions``) or Python calls
    (``calls``) for one stream of ``chunks`` chunks."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    one = [sys.executable, __file__, "--one", surface, str(chunks)]
    if how != "instructions":
        out = subprocess.run([*one, str(streams), how], env=env, check=True, capture_output=True, text=True).stdout
        return float(out.strip().splitlines()[-1]) / streams * (1 if how == "calls" else 1e6)
    counts = []
    for n in (streams, 2 * streams):  # subtracted: start-up, imports and the warm-up cancel out
        err = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *one, str(n), how],
                             env=env, check=True, capture_output=True, text=True).stderr
        counts.append(int(err.rsplit("Collected :", 1)[1].split()[0]))
    return (counts[1] - counts[0]) / streams / 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--surface", nargs="+", default=["openai", "anthropic", "ollama"], choices=sorted(_REQUESTS))
    ap.add_argument("--chunks", type=int, default=100)
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--instructions", action="store_true", help="callgrind instructions instead of CPU time")
    ap.add_argument("--calls", action="store_true", help="Python calls (cProfile's count) instead of CPU time")
    ap.add_argument("--compare-src")
    ap.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        _one(args.one)
        return 0
    srcs: list[tuple[str, str | None]] = [("compare", str(Path(args.compare_src).resolve()))] if args.compare_src else []
    srcs.append(("this", None))
    how = "instructions" if args.instructions else "calls" if args.calls else "time"
    rounds = args.rounds if how == "time" else 1
    unit = {"instructions": "kinstr", "calls": "calls", "time": "CPU us"}[how]
    print(f"chunks={args.chunks} streams={args.streams} rounds={rounds} load(1m)={os.getloadavg()[0]:.2f}")
    print(f"{'surface':>9} {'src':>8} {unit + '/chunk':>13} {unit + '/request':>15}")
    for surface in args.surface:
        best: dict[str, list[float]] = {}
        for _ in range(rounds):  # alternating the trees, round by round
            for label, src in srcs:
                m = best.setdefault(label, [float("inf"), float("inf")])
                m[0] = min(m[0], _measure(src, surface, args.chunks, args.streams, how))
                m[1] = min(m[1], _measure(src, surface, 1, args.streams, how))
        for label, (many, few) in best.items():
            per_chunk = (many - few) / (args.chunks - 1)
            print(f"{surface:>9} {label:>8} {per_chunk:>13.2f} {few - per_chunk:>15.1f}", flush=True)
    print(f"load(1m) after={os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
