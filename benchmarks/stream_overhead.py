"""Streaming overhead: time to first chunk and inter-chunk gaps, direct vs through `inferplane serve`.

A minimal SSE upstream (this script, ``--upstream PORT`` mode: raw asyncio, TCP_NODELAY) answers
every POST with its headers at once, then ``--chunks`` content chunks, one every ``--itl-ms`` (the
first after ``--itl-ms`` too), then ``data: [DONE]``. A client in this process keeps one keep-alive
connection per concurrent stream and measures, per stream, the time from writing the request to
the first body bytes with content (TTFC) and the gaps between later arrivals (ITL). Each
concurrency is measured directly against the upstream and through a gateway in front of it
(runtime ``openai``, one endpoint), alternating, for ``--rounds`` rounds; ``--compare-src PATH``
adds a gateway run from another source tree in the same rounds (before/after).

    python benchmarks/stream_overhead.py [--concurrency 1 16] [--streams 40] [--chunks 30]
        [--itl-ms 10] [--rounds 2] [--compare-src PATH]

Prints, per concurrency and source: TTFC p50 and the p99 gap, direct and through the gateway,
and the added milliseconds (median over rounds). Everything shares this machine's cores: compare
within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _procs import free_port, stop, wait_ok  # noqa: E402

_CHUNK = (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
          b'"delta":{"content":"tok "},"finish_reason":null}]}\n\n')
_DONE = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,' \
        b'"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
_BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}'


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
            self.buf = self.buf[head_end + 4 + n :]
            if path == b"/health" or path == b"/v1/models":
                body = b'{"object":"list","data":[{"id":"m","object":"model"}]}'
                self.t.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))
                continue
            self.t.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            loop = asyncio.get_running_loop()
            start = loop.time()
            for k in range(1, self.chunks + 1):
                loop.call_at(start + k * self.itl_s, self._send, _CHUNK)
            loop.call_at(start + (self.chunks + 1) * self.itl_s, self._send, _DONE, True)

    def _send(self, data: bytes, last: bool = False) -> None:
        if self.t is not None and not self.t.is_closing():
            self.t.write(b"%x\r\n%s\r\n" % (len(data), data) + (b"0\r\n\r\n" if last else b""))


def serve_upstream(port: int, chunks: int, itl_s: float) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Upstream(chunks, itl_s), "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()
    asyncio.run(main())


# -- the client ---------------------------------------------------------------------------

class _Client(asyncio.Protocol):
    """One keep-alive connection; ``stream()`` sends one request and times its body's arrivals."""

    def __init__(self) -> None:
        import httptools
        self.parser = httptools.HttpResponseParser(self)
        self.t: asyncio.Transport | None = None
        self.arrivals: list[float] = []
        self.done: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport  # type: ignore[assignment]
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        if b"content" in body:
            self.arrivals.append(time.perf_counter())

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("closed"))

    async def stream(self, host: bytes) -> tuple[float, list[float]]:
        import httptools
        self.parser = httptools.HttpResponseParser(self)
        self.arrivals = []
        self.done = asyncio.get_running_loop().create_future()
        t0 = time.perf_counter()
        self.t.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (host, len(_BODY), _BODY))
        await self.done
        a = self.arrivals
        return a[0] - t0, [y - x for x, y in itertools.pairwise(a)]


async def measure(url: str, conc: int, streams: int) -> tuple[list[float], list[float]]:
    """(TTFC seconds per stream, all gaps) for ``streams`` streams per connection, ``conc`` at once."""
    host, port = url.removeprefix("http://").split(":")
    loop = asyncio.get_running_loop()
    clients = [(await loop.create_connection(_Client, host, int(port)))[1] for _ in range(conc)]
    ttfc: list[float] = []
    gaps: list[float] = []

    async def worker(c: _Client) -> None:
        await c.stream(host.encode())  # warm: the gateway's upstream connection, caches
        for _ in range(streams):
            t, g = await c.stream(host.encode())
            ttfc.append(t)
            gaps.extend(g)

    await asyncio.gather(*(worker(c) for c in clients))
    for c in clients:
        c.t.close()
    return ttfc, gaps


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1e3


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--streams", type=int, default=40, help="streams per connection per measurement")
    ap.add_argument("--chunks", type=int, default=30)
    ap.add_argument("--itl-ms", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--compare-src", help="a second source tree to run a gateway from, alternating")
    ap.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.upstream:
        serve_upstream(args.upstream, args.chunks, args.itl_ms / 1e3)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    procs: list[subprocess.Popen] = []
    up_port = free_port()
    try:
        procs.append(subprocess.Popen([sys.executable, __file__, "--upstream", str(up_port), "--chunks",
                                       str(args.chunks), "--itl-ms", str(args.itl_ms)]))
        upstream = f"http://127.0.0.1:{up_port}"
        wait_ok(upstream + "/health")
        gateways = []
        srcs = [("compare", str(Path(args.compare_src).resolve()))] if args.compare_src else []
        srcs.append(("this", None))
        for label, src in srcs:
            proc, url = start_gateway(tmp, upstream, src)
            procs.append(proc)
            gateways.append((label, url))
        print(f"chunks={args.chunks} itl={args.itl_ms} ms streams/conn={args.streams} rounds={args.rounds} "
              f"cores={os.cpu_count()} load(1m)={os.getloadavg()[0]:.2f}")
        print(f"{'conc':>4} {'round':>5} {'src':>8} {'TTFC p50 direct':>16} {'gw':>7} {'+ms':>7} "
              f"{'gap p50 d':>10} {'gw':>7} {'gap p99 d':>10} {'gw':>7} {'+ms':>7}")
        added: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
        for c in args.concurrency:
            for r in range(args.rounds):
                for label, url in gateways:
                    dt, dg = asyncio.run(measure(upstream, c, args.streams))
                    gt, gg = asyncio.run(measure(url, c, args.streams))
                    d50, g50 = pct(dt, 0.5), pct(gt, 0.5)
                    d99, g99 = pct(dg, 0.99), pct(gg, 0.99)
                    added.setdefault((label, c), []).append((g50 - d50, g99 - d99, statistics.mean(gt) * 1e3
                                                             - statistics.mean(dt) * 1e3))
                    print(f"{c:>4} {r + 1:>5} {label:>8} {d50:>16.3f} {g50:>7.3f} {g50 - d50:>+7.3f} "
                          f"{pct(dg, 0.5):>10.3f} {pct(gg, 0.5):>7.3f} {d99:>10.3f} {g99:>7.3f} {g99 - d99:>+7.3f}")
        print("\nAdded by the gateway (median over rounds), ms:")
        print(f"{'conc':>4} {'src':>8} {'TTFC p50':>9} {'TTFC mean':>10} {'gap p99':>8}")
        for (label, c), rows in sorted(added.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            print(f"{c:>4} {label:>8} {statistics.median(x[0] for x in rows):>+9.3f} "
                  f"{statistics.median(x[2] for x in rows):>+10.3f} {statistics.median(x[1] for x in rows):>+8.3f}")
        print(f"load(1m) after={os.getloadavg()[0]:.2f}")
    finally:
        stop(procs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
