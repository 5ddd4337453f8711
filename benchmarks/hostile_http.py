"""Hostile clients against `inferplane serve`: what each costs the gateway in memory and time.

Starts a null OpenAI upstream (benchmarks/null_upstream.py) and a gateway in front of it, then
runs the HTTP-level cases of the issue-10 campaign one after another, printing the answer each
got and the gateway's RSS (VmRSS from /proc) before and after:

- N aborted uploads of 7 MiB (the client resets the connection one byte short of the body);
- 10 connections each sending 30 MB of headers, twice;
- one 10 MB header line, 100,000 headers, a 10 MB URL;
- 200 slowloris connections sending one byte a second, counted while still open;
- a normal request at the end (the gateway must still answer).

    python benchmarks/hostile_http.py [--slowloris-s 30] [--uploads 20]

Only 127.0.0.1. Each case is bounded in bytes and seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _procs import free_port, stop, wait_ok  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _abort(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()


async def _status_line(reader: asyncio.StreamReader, wait_s: float) -> str:
    try:
        line = await asyncio.wait_for(reader.readline(), wait_s)
    except (TimeoutError, ConnectionError):
        return "no answer"
    return line.decode("latin-1").strip() or "closed without an answer"


async def send_then_read(port: int, head: bytes, filler: bytes, total: int, *, abort: bool = False,
                         wait_s: float = 3) -> tuple[str, int]:
    """Send ``head``, then ``filler`` repeatedly up to ``total`` bytes (stopping when the server
    answers or closes); returns (status line, bytes sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    sent, pos = len(head), 0
    try:
        while sent < total:
            piece = filler[pos : pos + min(total - sent, 262144)] or filler[: total - sent]
            pos = (pos + len(piece)) % len(filler)
            writer.write(piece)
            await writer.drain()
            sent += len(piece)
            if reader._buffer or reader.at_eof():  # an answer arrived: stop sending
                break
    except ConnectionError:
        pass
    if abort:
        _abort(writer)
        return "aborted by the client", sent
    status = await _status_line(reader, wait_s)
    writer.close()
    return status, sent


async def aborted_uploads(port: int, n: int) -> list[str]:
    size = 7 * 1024 * 1024
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % size)
    out = []
    for _ in range(n):
        status, _sent = await send_then_read(port, head, b"x" * 262144, len(head) + size - 1, abort=True)
        out.append(status)
    return out


async def big_headers(port: int, conns: int, per_conn: int) -> list[str]:
    head = b"GET /health HTTP/1.1\r\nHost: h\r\n"
    lines = b"".join(b"X-F%06d: %s\r\n" % (i, b"a" * 980) for i in range(per_conn // 1000))  # distinct names
    got = await asyncio.gather(*(send_then_read(port, head, lines, len(head) + len(lines)) for _ in range(conns)))
    return [s for s, _ in got]


async def one(port: int, head: bytes, filler: bytes, total: int) -> str:
    status, sent = await send_then_read(port, head, filler, total)
    return f"{status} (after {sent / 1e6:.2f} MB sent)"


async def slowloris(port: int, conns: int, seconds: float) -> list[int]:
    """Open ``conns`` connections, each sending one byte of a never-ending head a second; returns the
    number still open at each second."""
    writers = []
    for _ in range(conns):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET /health HTTP/1.1\r\nHost: h\r\nX-Slow: ")
        writers.append((r, w))
    counts = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        await asyncio.sleep(1)
        open_now = 0
        for r, w in writers:
            if r.at_eof() or w.is_closing():
                continue
            try:
                w.write(b"a")
                await w.drain()
                open_now += 1
            except ConnectionError:
                pass
        counts.append(open_now)
    for _, w in writers:
        w.close()
    return counts


async def campaign(port: int, pid: int, args: argparse.Namespace) -> None:
    def rss() -> str:
        return f"{rss_mb(pid):.0f} MB"

    async def settle() -> None:
        await asyncio.sleep(1.5)

    print(f"gateway RSS at start: {rss()}")
    before = rss()
    statuses = await aborted_uploads(port, args.uploads)
    await settle()
    print(f"{args.uploads} aborted 7 MiB uploads: RSS {before} -> {rss()}  ({set(statuses)})")
    for round_ in (1, 2):
        before = rss()
        statuses = await big_headers(port, 10, 30_000_000)
        await settle()
        print(f"10 connections x 30 MB headers, round {round_}: RSS {before} -> {rss()}  answers {sorted(set(statuses))}")
    print("one 10 MB header line:", await one(port, b"GET /health HTTP/1.1\r\nHost: h\r\nX-Big: ", b"a" * 65536,
                                              10_000_000))
    hundred_k = b"".join(b"X-H%d: v\r\n" % i for i in range(100_000)) + b"\r\n"
    head = b"GET /health HTTP/1.1\r\nHost: h\r\n"
    print("100,000 headers:", await one(port, head, hundred_k, len(head) + len(hundred_k)))
    print("one 10 MB URL:", await one(port, b"GET /", b"a" * 65536, 10_000_000))
    before = rss()
    counts = await slowloris(port, 200, args.slowloris_s)
    await settle()
    marks = {s: counts[s - 1] for s in (1, 5, 10, 20, 25, 30, 60) if s <= len(counts)}
    print(f"200 slowloris connections (1 byte/s), still open after s: {marks}; RSS {before} -> {rss()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slowloris-s", type=float, default=30.0, help="how long the slowloris clients trickle")
    ap.add_argument("--uploads", type=int, default=20)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hostile-"))
    up_port, gw_port = free_port(), free_port()
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, str(HERE / "null_upstream.py"), str(up_port)]))
        wait_ok(f"http://127.0.0.1:{up_port}/health")
        (tmp / "deploy.yaml").write_text(
            f"gateway:\n  port: {gw_port}\n  scrape_interval_s: 5\ndeployments:\n  - name: m\n    runtime: openai\n"
            f"    replicas: 0\n    endpoints:\n      - url: http://127.0.0.1:{up_port}\n")
        procs.append(subprocess.Popen([sys.executable, "-m", "inferplane", "serve", "--config", str(tmp / "deploy.yaml"),
                                       "--log-dir", str(tmp)], stderr=subprocess.DEVNULL))
        wait_ok(f"http://127.0.0.1:{gw_port}/ready", timeout=60)
        print(f"cores={os.cpu_count()} load(1m)={os.getloadavg()[0]:.2f}")
        asyncio.run(campaign(gw_port, procs[1].pid, args))
        with urllib.request.urlopen(f"http://127.0.0.1:{gw_port}/health", timeout=10) as r:
            print(f"a normal request afterwards: {r.status}; final RSS {rss_mb(procs[1].pid):.0f} MB")
        print(f"load(1m) after={os.getloadavg()[0]:.2f}")
    finally:
        stop(procs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
