"""Streaming overhead: time to first chunk and inter-chunk gaps, direct vs through `inferplane serve`.

A minimal SSE upstream (this script, ``--upstream PORT`` mode: raw asyncio, TCP_NODELAY) answers
every POST with its headers at once, then ``--chunks`` content chunks, one every ``--itl-ms`` (the
first after ``--itl-ms`` too), then the final chunk and ``data: [DONE]``. Each chunk's text says
when the upstream received the request and when it sent the chunk (``time.perf_counter_ns``:
CLOCK_MONOTONIC, one clock for every process of a Linux machine), and the text survives every
surface's translation, so what the gateway adds splits into its legs: the request's way up
(client -> upstream) and each chunk's way down (upstream -> client, its "relay" time).

A client in this process keeps one keep-alive connection per concurrent stream and measures,
per stream, the time from writing the request to the first body bytes with content (TTFC) and
the gaps between later content arrivals. Each concurrency is measured directly against the
upstream and through a gateway in front of it (runtime ``openai``, one endpoint), alternating,
for ``--rounds`` rounds. ``--surface`` picks the API the client speaks to the gateway: ``openai``
(``/v1/chat/completions``, the bytes passed through untouched), ``anthropic`` (``/v1/messages``)
or ``ollama`` (``/api/chat``), each the same upstream stream translated on its way down; direct is
always the upstream's own OpenAI stream. ``--compare-ref REF`` (a git commit of this repository)
or ``--compare-src PATH`` (a ``src`` tree) adds a gateway run from that code in the same rounds,
in alternating order: before/after, measured side by side. ``--floor`` adds a process that only
relays bytes (uvloop, one upstream connection per client connection): what any process in
between costs on this machine (its wake-ups and two more socket hops), the least a gateway can add.

    python benchmarks/stream_overhead.py [--surface openai anthropic ollama] [--concurrency 1 16]
        [--streams 40] [--chunks 30] [--itl-ms 10] [--rounds 3] [--compare-ref REF | --compare-src PATH]
        [--floor] [--cpu-awake]

``--cpu-awake`` runs a spinner per core at the idle scheduling class for the whole run: any other
task takes its core at once, and no core ever halts. On a VM whose idle vCPUs halt (a host wake-up
for every chunk and request), it separates what the processes' code costs from what waking an
idle core costs: compare a run with it to one without.

``--plain`` measures non-streamed requests instead (one connection, one at a time, ``--streams``
x 5 per measurement), back to back and after ``--itl-ms`` of silence each: what the same gateway
adds to a request's way up when its process was busy a moment ago and when it has been idle as
long as between two chunks (the state a streamed request finds it in).

Prints a row per concurrency, round, source and surface (with the 1-minute load average), then,
as medians over the rounds: TTFC p50 and gap p99 direct / through the gateway / added, the
added request leg and chunk relay time (p50, p99), and the gateway's CPU time per stream (from
/proc/PID/task/*/schedstat: the least load-sensitive number). Everything shares this machine's cores:
compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _procs import free_port, stop, wait_ok  # noqa: E402

_CHUNK = (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
          b'"delta":{"content":"tok %019d %019d "},"finish_reason":null}]}\n\n')
_DONE = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,' \
        b'"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
_ANSWER = (b'{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":'
           b'{"role":"assistant","content":"tok %019d %019d "},"finish_reason":"stop"}],'
           b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}')
_PLAIN = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
_STAMPS = re.compile(rb"tok (\d{19}) (\d{19}) ")
_REQUESTS = {
    "openai": (b"/v1/chat/completions", b"",
               b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}'),
    "anthropic": (b"/v1/messages", b"anthropic-version: 2023-06-01\r\n",
                  b'{"model":"m","max_tokens":256,"messages":[{"role":"user","content":"hi"}],"stream":true}'),
    "ollama": (b"/api/chat", b"", b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}'),
}


# -- the upstream (its own process) ---------------------------------------------------------

class _Upstream(asyncio.Protocol):
    def __init__(self, chunks: int, itl_s: float) -> None:
        self.chunks = chunks
        self.itl_s = itl_s
        self.buf = b""
        self.t: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport  # type: ignore[assignment]
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        received = time.perf_counter_ns()
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buf[:head_end].lower()
            i = head.find(b"content-length:")
            n = int(head[i + 15 :].split(b"\r\n", 1)[0]) if i >= 0 else 0
            if len(self.buf) < head_end + 4 + n:
                return
            path = head.split(b" ", 2)[1]
            streamed = b'"stream":true' in self.buf[head_end + 4 : head_end + 4 + n]
            self.buf = self.buf[head_end + 4 + n :]
            if path == b"/health" or path == b"/v1/models":
                body = b'{"object":"list","data":[{"id":"m","object":"model"}]}'
                self.t.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))
                continue
            if not streamed:  # --plain: the whole answer at once, stamped like a chunk
                body = _ANSWER % (received, time.perf_counter_ns())
                self.t.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))
                continue
            self.t.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            loop = asyncio.get_running_loop()
            start = loop.time()
            for k in range(1, self.chunks + 1):
                loop.call_at(start + k * self.itl_s, self._send, received)
            loop.call_at(start + (self.chunks + 1) * self.itl_s, self._send, 0)

    def _send(self, received: int) -> None:
        if self.t is not None and not self.t.is_closing():
            data = _CHUNK % (received, time.perf_counter_ns()) if received else _DONE
            self.t.write(b"%x\r\n%s\r\n" % (len(data), data) + (b"" if received else b"0\r\n\r\n"))


def serve_upstream(port: int, chunks: int, itl_s: float) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Upstream(chunks, itl_s), "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()
    asyncio.run(main())


# -- the floor: a byte relay that does nothing else (its own process) ----------------------

class _Pipe(asyncio.Protocol):
    """One side of a relayed connection: what it receives goes to ``peer`` as it is."""

    def __init__(self) -> None:
        self.t: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.early: list[bytes] = []
        self.connecting: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.t is not None:
            self.peer.t.write(data)
        else:
            self.early.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.t is not None:
            self.peer.t.close()


def serve_tcp_relay(port: int, upstream_port: int) -> None:
    """Relay each connection to the upstream, bytes untouched, on uvloop (what ``serve`` runs on):
    the least any proxy process in between adds (its wake-ups, its two sockets)."""
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def accept() -> _Pipe:
            client = _Pipe()

            async def connect() -> None:
                _, up = await loop.create_connection(_Pipe, "127.0.0.1", upstream_port)
                up.peer, client.peer = client, up
                for data in client.early:
                    up.t.write(data)
                client.early.clear()
            client.connecting = loop.create_task(connect())
            return client

        server = await loop.create_server(accept, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()
    uvloop.run(main())


# -- the client ---------------------------------------------------------------------------

@dataclass
class Sample:
    """What one measurement (many streams) saw, in seconds."""

    ttfc: list[float] = field(default_factory=list)
    up: list[float] = field(default_factory=list)
    """Per stream: request written -> the upstream received it."""
    relay: list[float] = field(default_factory=list)
    """Per chunk: the upstream sent it -> its bytes arrived here."""
    gaps: list[float] = field(default_factory=list)


class _Client(asyncio.Protocol):
    """One keep-alive connection; ``stream()`` sends one request and times its body's arrivals."""

    def __init__(self) -> None:
        import httptools
        self.parser = httptools.HttpResponseParser(self)
        self.t: asyncio.Transport | None = None
        self.arrivals: list[tuple[float, bytes]] = []
        self.done: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport  # type: ignore[assignment]
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        if b"tok " in body:
            self.arrivals.append((time.perf_counter(), body))

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("closed"))

    async def stream(self, host: bytes, surface: str, sample: Sample | None) -> None:
        import httptools
        path, extra, body = _REQUESTS[surface]
        self.parser = httptools.HttpResponseParser(self)
        self.arrivals = []
        self.done = asyncio.get_running_loop().create_future()
        t0 = time.perf_counter()
        self.t.write(b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%s"
                     b"Content-Length: %d\r\n\r\n%s" % (path, host, extra, len(body), body))
        await self.done
        if sample is None or not self.arrivals:
            return
        a = self.arrivals
        sample.ttfc.append(a[0][0] - t0)
        sample.gaps.extend(y[0] - x[0] for x, y in itertools.pairwise(a))
        first = _STAMPS.search(a[0][1])
        if first is not None:
            sample.up.append(int(first.group(1)) / 1e9 - t0)
        for t, piece in a:
            sample.relay.extend(t - int(m.group(2)) / 1e9 for m in _STAMPS.finditer(piece))


    async def plain(self, host: bytes, idle_s: float, sample: Sample) -> None:
        """One non-streamed OpenAI request after ``idle_s`` of silence; ``sample.ttfc`` gets its round trip."""
        import httptools
        await asyncio.sleep(idle_s)
        self.parser = httptools.HttpResponseParser(self)
        self.arrivals = []
        self.done = asyncio.get_running_loop().create_future()
        t0 = time.perf_counter()
        self.t.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (host, len(_PLAIN), _PLAIN))
        await self.done
        stamp = _STAMPS.search(self.arrivals[0][1])
        sample.ttfc.append(self.arrivals[0][0] - t0)
        if stamp is not None:
            sample.up.append(int(stamp.group(1)) / 1e9 - t0)


async def measure_plain(url: str, requests: int, idle_s: float) -> Sample:
    """``requests`` plain requests on one connection, one at a time, each after ``idle_s`` of silence."""
    host, port = url.removeprefix("http://").split(":")
    _, c = await asyncio.get_running_loop().create_connection(_Client, host, int(port))
    sample, warm = Sample(), Sample()
    for _ in range(10):
        await c.plain(host.encode(), 0, warm)
    for _ in range(requests):
        await c.plain(host.encode(), idle_s, sample)
    c.t.close()
    return sample


def run_plain(upstream: str, gateways: list[tuple[str, str, int, list[str]]], args: argparse.Namespace) -> None:
    """``--plain``: a non-streamed request's round trip and way up, direct and through each gateway,
    back to back and after ``--itl-ms`` of silence (what a streamed request meets after its
    previous stream's last chunk): how much of a stream's added way up is the gateway's code
    running on a cold (idle) process rather than anything streaming does."""
    print(f"{'rnd':>3} {'src':>8} {'idle ms':>7} {'load':>5} {'RTT p50 d':>9} {'gw':>7} {'+ms':>7} {'up p50 +ms':>10}")
    rows: dict[tuple[str, float], list[tuple[float, float]]] = {}
    for r in range(args.rounds):
        for idle in (0.0, args.itl_ms / 1e3):
            for label, url, _pid, _ in gateways if r % 2 == 0 else gateways[::-1]:
                d = asyncio.run(measure_plain(upstream, args.streams * 5, idle))
                g = asyncio.run(measure_plain(url, args.streams * 5, idle))
                row = (pct(g.ttfc, 0.5) - pct(d.ttfc, 0.5), pct(g.up, 0.5) - pct(d.up, 0.5))
                rows.setdefault((label, idle), []).append(row)
                print(f"{r + 1:>3} {label:>8} {idle * 1e3:>7.0f} {os.getloadavg()[0]:>5.2f} {pct(d.ttfc, 0.5):>9.3f} "
                      f"{pct(g.ttfc, 0.5):>7.3f} {row[0]:>+7.3f} {row[1]:>+10.3f}", flush=True)
    print(f"\nMedians over {args.rounds} rounds, ms added by the gateway (plain requests):")
    for (label, idle), rs in sorted(rows.items()):
        print(f"{label:>8} idle {idle * 1e3:>3.0f} ms: RTT {statistics.median(x[0] for x in rs):+.3f}  "
              f"way up {statistics.median(x[1] for x in rs):+.3f}")


async def measure(url: str, conc: int, streams: int, surface: str) -> Sample:
    """``streams`` streams per connection, ``conc`` connections at once (one warm-up stream each)."""
    host, port = url.removeprefix("http://").split(":")
    loop = asyncio.get_running_loop()
    clients = [(await loop.create_connection(_Client, host, int(port)))[1] for _ in range(conc)]
    sample = Sample()

    async def worker(c: _Client) -> None:
        await c.stream(host.encode(), surface, None)  # warm: the gateway's upstream connection, caches
        for _ in range(streams):
            await c.stream(host.encode(), surface, sample)

    await asyncio.gather(*(worker(c) for c in clients))
    for c in clients:
        c.t.close()
    return sample


def pct(xs: list[float], q: float) -> float:
    """The ``q`` quantile of ``xs`` (seconds), in milliseconds."""
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1e3


def cpu_seconds(pid: int) -> float:
    """CPU time of a process's threads so far (the scheduler's nanosecond count, where /proc/PID/stat
    counts 10 ms ticks)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):  # a thread that just ended
            pass
    return total / 1e9


def start_gateway(tmp: Path, upstream: str, src: str | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cfg = tmp / f"deploy-{port}.yaml"
    cfg.write_text(f"gateway:\n  port: {port}\n  scrape_interval_s: 60\ndeployments:\n  - name: m\n    runtime: openai\n"
                   f"    replicas: 0\n    policy: least_load\n    endpoints:\n      - url: {upstream}\n")
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-m", "inferplane", "serve", "--config", str(cfg), "--log-dir", str(tmp)],
                            stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_ok(url + "/ready", timeout=120)
    return proc, url


def sources(args: argparse.Namespace, tmp: Path) -> list[tuple[str, str | None]]:
    """(label, PYTHONPATH or None for this tree) of each gateway to run."""
    srcs: list[tuple[str, str | None]] = []
    if args.compare_ref:
        dest = tmp / "compare"
        dest.mkdir()
        archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", args.compare_ref, "src"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        srcs.append((args.compare_ref[:8], str(dest / "src")))
    elif args.compare_src:
        srcs.append(("compare", str(Path(args.compare_src).resolve())))
    srcs.append(("this", None))
    return srcs


_COLS = ("TTFC p50 d", "gw", "+ms", "up +ms", "relay p50 d", "gw", "relay p99 d", "gw", "+ms",
         "gap p99 d", "gw", "+ms", "CPU us")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--surface", nargs="+", default=["openai"], choices=sorted(_REQUESTS))
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--streams", type=int, default=40, help="streams per connection per measurement")
    ap.add_argument("--chunks", type=int, default=30)
    ap.add_argument("--itl-ms", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compare-ref", help="a git commit of this repository to run a gateway from too, alternating")
    ap.add_argument("--compare-src", help="a second src tree to run a gateway from, alternating")
    ap.add_argument("--floor", action="store_true", help="also measure a byte relay that does nothing else "
                    "(uvloop, its own process): the least a process in between adds on this machine")
    ap.add_argument("--plain", action="store_true", help="measure non-streamed requests instead, back to back and "
                    "after --itl-ms of silence: the round trip and the way up, direct and through each gateway")
    ap.add_argument("--cpu-awake", action="store_true", help="keep every core busy with a spinner at the idle "
                    "scheduling class (SCHED_IDLE: it runs only when nothing else can) for the whole run, so that no "
                    "core halts between chunks: what the processes add when their CPU never goes idle")
    ap.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--tcp-relay", type=int, nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--spin", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.spin:
        spin()
    if args.upstream:
        serve_upstream(args.upstream, args.chunks, args.itl_ms / 1e3)
        return 0
    if args.tcp_relay:
        serve_tcp_relay(*args.tcp_relay)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    procs: list[subprocess.Popen] = []
    up_port = free_port()
    try:
        if args.cpu_awake:
            procs += [subprocess.Popen([sys.executable, __file__, "--spin"]) for _ in range(os.cpu_count() or 1)]
        procs.append(subprocess.Popen([sys.executable, __file__, "--upstream", str(up_port), "--chunks",
                                       str(args.chunks), "--itl-ms", str(args.itl_ms)]))
        upstream = f"http://127.0.0.1:{up_port}"
        wait_ok(upstream + "/health")
        gateways = []  # (label, url, pid, surfaces)
        for label, src in sources(args, tmp):
            proc, url = start_gateway(tmp, upstream, src)
            procs.append(proc)
            gateways.append((label, url, proc.pid, args.surface))
        if args.floor:
            port = free_port()
            procs.append(subprocess.Popen([sys.executable, __file__, "--tcp-relay", str(port), str(up_port)]))
            wait_ok(f"http://127.0.0.1:{port}/health")
            gateways.append(("floor", f"http://127.0.0.1:{port}", procs[-1].pid, ["openai"]))
        if args.plain:
            run_plain(upstream, gateways, args)
            return 0
        print(f"chunks={args.chunks} itl={args.itl_ms} ms streams/conn={args.streams} rounds={args.rounds} "
              f"cores={os.cpu_count()} load(1m)={os.getloadavg()[0]:.2f}"
              + (" cpu-awake (the load counts the spinners)" if args.cpu_awake else ""))
        print(f"{'conc':>4} {'rnd':>3} {'src':>8} {'surface':>9} {'load':>5} " + " ".join(f"{c:>{max(len(c), 6)}}"
                                                                                    for c in _COLS))
        rows: dict[tuple[int, str, str], list[tuple[float, ...]]] = {}
        for c in args.concurrency:
            for r in range(args.rounds):
                for label, url, pid, surfaces in gateways if r % 2 == 0 else gateways[::-1]:
                    d = asyncio.run(measure(upstream, c, args.streams, "openai"))
                    for surface in surfaces:
                        cpu = cpu_seconds(pid)
                        g = asyncio.run(measure(url, c, args.streams, surface))
                        cpu = (cpu_seconds(pid) - cpu) / ((args.streams + 1) * c) * 1e6
                        row = (pct(d.ttfc, 0.5), pct(g.ttfc, 0.5), pct(g.up, 0.5) - pct(d.up, 0.5),
                               pct(d.relay, 0.5), pct(g.relay, 0.5), pct(d.relay, 0.99), pct(g.relay, 0.99),
                               pct(d.gaps, 0.99), pct(g.gaps, 0.99),
                               (statistics.mean(g.ttfc) - statistics.mean(d.ttfc)) * 1e3, cpu)
                        rows.setdefault((c, label, surface), []).append(row)
                        cells = (row[0], row[1], row[1] - row[0], row[2], row[3], row[4], row[5], row[6],
                                 row[6] - row[5], row[7], row[8], row[8] - row[7], cpu)
                        print(f"{c:>4} {r + 1:>3} {label:>8} {surface:>9} {os.getloadavg()[0]:>5.2f} "
                              + " ".join(_cell(n, v) for n, v in zip(_COLS, cells, strict=True)), flush=True)
        print_summary(rows, args.rounds)
        print(f"load(1m) after={os.getloadavg()[0]:.2f}")
    finally:
        stop(procs)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def spin() -> None:
    """``--cpu-awake``'s spinner: busy forever at SCHED_IDLE, so any other runnable task takes the core at once."""
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    while True:
        pass


def _cell(heading: str, v: float) -> str:
    """``v`` under ``heading``: ms to the µs (signed for an added time), CPU µs whole."""
    w = max(len(heading), 6)
    if heading.startswith("CPU"):
        return f"{v:>{w}.0f}"
    return f"{v:>+{w}.3f}" if "+" in heading else f"{v:>{w}.3f}"


_SUMMARY = (  # (heading, the value from a row)
    ("TTFC p50 d", lambda x: x[0]), ("gw", lambda x: x[1]), ("+ms", lambda x: x[1] - x[0]),
    ("TTFC mean +", lambda x: x[9]), ("up leg +", lambda x: x[2]), ("relay p50 +", lambda x: x[4] - x[3]),
    ("relay p99 +", lambda x: x[6] - x[5]), ("gap p99 d", lambda x: x[7]), ("gw", lambda x: x[8]),
    ("+ms", lambda x: x[8] - x[7]), ("CPU us/stream", lambda x: x[10]),
)


def print_summary(rows: dict[tuple[int, str, str], list[tuple[float, ...]]], rounds: int) -> None:
    """Medians over the rounds: TTFC p50 and gap p99 direct / gateway / added, the legs added, CPU."""
    print(f"\nMedians over {rounds} rounds, ms (d: direct, gw: through the gateway, +: added by it):")
    print(f"{'conc':>4} {'src':>8} {'surface':>9} " + " ".join(f"{h:>{max(len(h), 6)}}" for h, _ in _SUMMARY))
    for (c, label, surface), rs in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1])):
        print(f"{c:>4} {label:>8} {surface:>9} "
              + " ".join(_cell(h, statistics.median(f(x) for x in rs)) for h, f in _SUMMARY))


if __name__ == "__main__":
    raise SystemExit(main())
