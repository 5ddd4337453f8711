"""Where a streamed request's CPU instructions go, leg by leg: its way up, its first chunk's way down,
each later chunk, its end.

One process drives the real HTTP server protocol (``HttpServerProtocol``, fed the client's request
bytes, writing into an in-memory client transport) in front of a gateway wired as ``serve`` wires
it (``handler_cpu.py --wiring server``), against an in-process upstream (``MemoryConnector``) that
answers each request with its headers, then ``--chunks`` content chunks, each delivered in its own
loop callback as a runtime's chunks 10 ms apart arrive, then the usage chunk and ``data: [DONE]``.
Under valgrind's callgrind, its counters are dumped at each leg's boundary (``CALLGRIND_DUMP_STATS_AT``
from a ten-line C helper built with ``cc`` against ``valgrind/callgrind.h``), and each dump's count,
less one dump's own cost (measured: dumps in a row), is added to its leg:

- ``up``: the client's bytes handed to the server -> the gateway's write to the upstream (what the
  gateway adds to time to first chunk before the upstream even has the request);
- ``between``: that write -> the first content chunk read (the in-process upstream's own work and
  the answer's head; the gateway's part of it happens while a runtime generates, on neither leg);
- ``first``: the first content chunk read -> its bytes written to the client (the other leg of
  time to first chunk); ``first_after``: the rest of that read (the observers, after the write);
- ``chunk``: one later content chunk, read to written and observed (per chunk);
- ``end``: the final read to the request's end (accounting, the final event, the connection back).

Deterministic: another process's load changes nothing but how long it takes, and the cyclic garbage
collector is off while streams are measured (it would run in whichever leg crossed its threshold).

    python benchmarks/stream_phases.py [--surface openai anthropic ollama] [--streams 20] [--chunks 10]
        [--compare-src PATH] [--keep DIR] [--sdk-headers] [--calls]

``--sdk-headers``: the request carries the header fields the installed ``openai`` client sends
(captured from it at start, against a socket on 127.0.0.1: its ``User-Agent``, ``X-Stainless-*``,
``Authorization``... 17 fields), not only ``Host``, ``Content-Type`` and ``Content-Length``: what
a real client's way up costs. The fields are printed.

``--calls`` lists the calls instead (no valgrind): every Python function and C function called on one
stream's way up, nested as they ran (``sys.setprofile``), then how many of each. Each costs ~1k
instructions or more on this interpreter, so the list is where the way up can get shorter.
With ``--compare-src`` it lists that tree's calls instead of this one's.

``--keep DIR`` keeps the dumps (``DIR/<src>-<surface>/cg.out.N``, the leg in each one's trigger line)
for ``callgrind_annotate --inclusive=yes``.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from stream_cpu import _CHUNK, _FINAL  # noqa: E402  (the same runtime stream stream_cpu.py relays)

_HELPER = b'#include <valgrind/callgrind.h>\nvoid dump(const char *s) { CALLGRIND_DUMP_STATS_AT(s); }\n'
_LEGS = ("up", "between", "first", "first_after", "chunk", "end")
_REQUESTS = {
    "openai": (b"/v1/chat/completions", b"", b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}'),
    "anthropic": (b"/v1/messages", b"anthropic-version: 2023-06-01\r\n",
                  b'{"model":"m","max_tokens":256,"messages":[{"role":"user","content":"hi"}],"stream":true}'),
    "ollama": (b"/api/chat", b"", b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}'),
}


def capture_sdk_headers() -> bytes:
    """The header lines (``Name: value\\r\\n`` each) the installed ``openai`` client sends with a
    streamed chat request, less ``Host``, ``Content-Type`` and ``Content-Length`` (the request
    has its own)."""
    import socket
    import threading

    import openai

    srv = socket.create_server(("127.0.0.1", 0))
    head: list[bytes] = []

    def answer() -> None:
        conn, _ = srv.accept()
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(65536)
            head.append(buf.split(b"\r\n\r\n", 1)[0])
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 14\r\n"
                         b"Connection: close\r\n\r\ndata: [DONE]\n\n")

    t = threading.Thread(target=answer)
    t.start()
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{srv.getsockname()[1]}/v1", api_key="sk-bench", max_retries=0,
                           timeout=5)
    try:
        for _ in client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True):
            pass
    finally:
        t.join(5)
        srv.close()
    lines = head[0].split(b"\r\n")[1:]
    own = (b"host:", b"content-type:", b"content-length:")
    return b"".join(line + b"\r\n" for line in lines if not line.lower().startswith(own))


async def _run(surface: str, streams: int, chunks: int, helper: str, headers: bytes = b"") -> None:
    """Serve ``streams`` streams (after a warm-up), dumping callgrind's counters at each leg's end."""
    import handler_cpu

    from inferplane.config import DeploymentConfig
    from inferplane.config.models import ReplicaTarget
    from inferplane.gateway import app as app_module
    from inferplane.gateway import memory_transport
    from inferplane.gateway.http1 import HttpServerProtocol
    from inferplane.gateway.http_limits import ServerState
    from inferplane.routing.registry import Endpoint, EndpointRegistry
    from inferplane.runtimes.registry import get_adapter

    if helper:
        dump = ctypes.CDLL(helper).dump
        dump.argtypes = [ctypes.c_char_p]
    else:  # --calls
        dump = trace = _WayUpCalls()
    on = False
    reads = 0  # the current stream's upstream reads so far (0: its head)
    seen_first = False
    done: asyncio.Future[None] | None = None

    def mark(leg: bytes) -> None:
        if on:
            dump(leg)

    final = _FINAL % (chunks, chunks + 5)

    async def upstream(_req: memory_transport.MemoryRequest, wire: memory_transport.MemoryWire) -> None:
        wire.start()
        for _ in range(5):  # the head's read, the relay's task up to forwarding
            await asyncio.sleep(0)
        for _ in range(chunks):  # each delivery is its own loop callback: one read per chunk
            wire.chunk(_CHUNK)
        wire.chunk(final)
        wire.end()

    write, feed = memory_transport._MemoryTransport.write, memory_transport._MemoryTransport._feed

    def upstream_write(self: Any, data: bytes) -> None:
        mark(b"up")
        write(self, data)

    def upstream_read(self: Any, data: bytes) -> None:
        nonlocal reads
        k = reads
        reads += 1
        if k == 1:
            mark(b"between")
        feed(self, data)
        if k == 1:
            mark(b"first_after")
        elif 1 < k <= chunks:
            mark(b"chunk")

    memory_transport._MemoryTransport.write = upstream_write  # type: ignore[method-assign]
    memory_transport._MemoryTransport._feed = upstream_read  # type: ignore[method-assign]

    class Client(asyncio.Transport):
        def write(self, data: bytes | bytearray | memoryview) -> None:
            nonlocal seen_first
            if not seen_first and bytes(data).find(b"token") >= 0:
                seen_first = True
                mark(b"first")
            if bytes(data).endswith(b"0\r\n\r\n") and done is not None:
                asyncio.get_running_loop().call_soon(done.set_result, None)

        def is_closing(self) -> bool:
            return False

    dep = DeploymentConfig(name="m", runtime="openai", replicas=0, endpoints=(ReplicaTarget(url="http://up:80"),))
    registry = EndpointRegistry()
    init = app_module.Gateway.__init__

    def with_upstream(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **{**kwargs, "connect": memory_transport.MemoryConnector(upstream)})

    app_module.Gateway.__init__ = with_upstream  # type: ignore[method-assign]
    gw: Any = handler_cpu._gateway(dep, registry, "server")
    ep = Endpoint(id=registry.new_id("m"), deployment="m", runtime="openai", url="http://up:80",
                  dialect=get_adapter("openai").dialect_for(dep), capacity=64, managed=False)
    registry.add(ep)
    registry.set_ready(ep, True)
    proto = HttpServerProtocol(gw.handle, ServerState(gw.http_limits()))
    proto.connection_made(Client())
    path, extra, body = _REQUESTS[surface]
    raw = (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s%sContent-Length: %d\r\n\r\n%s"
           % (path, extra, headers, len(body), body))

    async def one() -> None:
        nonlocal done, reads, seen_first
        done = asyncio.get_running_loop().create_future()
        reads, seen_first = 0, False
        mark(b"idle")
        proto.data_received(raw)
        await done
        mark(b"end")

    for _ in range(200):  # warm: every path taken, every cache filled
        await one()
    gc.collect()
    gc.disable()  # serve runs it every 20,000 allocations (server.py): the process's cost, not a leg's
    on = True
    mark(b"start")
    for _ in range(20):
        mark(b"calib")  # a dump's own cost, from the end of one to the end of the next
    for _ in range(streams):
        await one()
    on = False
    gc.enable()
    gw.close()
    if not helper:
        trace.print()


class _WayUpCalls:
    """``--calls``: the Python and C calls on a stream's way up (its ``idle`` mark to its ``up`` mark), nested
    as they ran; the last stream's are kept. This script's own calls (the marks) are left out."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._stack: list[bool] = []  # per Python frame entered: whether it was listed

    def __call__(self, leg: bytes) -> None:
        if leg == b"idle":
            self.calls, self._stack = [], []
            sys.setprofile(self._event)
        elif leg == b"up":
            sys.setprofile(None)

    def _event(self, frame: Any, event: str, arg: Any) -> None:
        depth = sum(self._stack)
        if event == "call":
            code = frame.f_code
            listed = code.co_filename != __file__
            if listed:
                self.calls.append("  " * depth + f"{code.co_qualname}  {Path(code.co_filename).name}:"
                                  f"{code.co_firstlineno}")
            self._stack.append(listed)
        elif event == "return":
            if self._stack:
                self._stack.pop()
        elif event == "c_call" and (not self._stack or self._stack[-1]):
            self.calls.append("  " * depth + f"[C] {getattr(arg, '__qualname__', arg)}")

    def print(self) -> None:
        c = sum(line.lstrip().startswith("[C]") for line in self.calls)
        print("\n".join(self.calls))
        print(f"{len(self.calls) - c} Python calls, {c} C calls on the way up")


def _legs(out_dir: Path, streams: int, chunks: int) -> dict[str, float]:
    """Thousands of instructions per stream (``chunk``: per chunk) for each leg, from the dumps."""
    total: dict[str, int] = {}
    count: dict[str, int] = {}
    for f in out_dir.glob("cg.out.*"):
        head = f.read_text(errors="replace")[:4000]
        leg = re.search(r"Client Request: (\S+)", head)
        n = re.search(r"^summary: (\d+)", head, re.M)
        if leg and n:
            total[leg.group(1)] = total.get(leg.group(1), 0) + int(n.group(1))
            count[leg.group(1)] = count.get(leg.group(1), 0) + 1
    per_dump = total["calib"] / count["calib"]
    out = {leg: (total[leg] - count[leg] * per_dump) / streams / 1e3 for leg in _LEGS}
    out["chunk"] /= chunks - 1
    return out


def _child(src: str | None, surface: str, streams: int, chunks: int, helper: str,
           headers_file: str) -> tuple[list[str], dict[str, str]]:
    """The ``--one`` process's command and environment: ``src`` first on its path; ``helper`` "" lists calls."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    if src:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return [sys.executable, __file__, "--one", surface, str(streams), str(chunks), helper, headers_file], env


def _measure(src: str | None, surface: str, streams: int, chunks: int, helper: str, out_dir: Path,
             headers_file: str) -> dict[str, float]:
    cmd, env = _child(src, surface, streams, chunks, helper, headers_file)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("cg.out*"):
        old.unlink()
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_dir / 'cg.out'}", *cmd],
                   env=env, check=True, capture_output=True)
    return _legs(out_dir, streams, chunks)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--surface", nargs="+", default=["openai", "anthropic", "ollama"], choices=sorted(_REQUESTS))
    ap.add_argument("--streams", type=int, default=20)
    ap.add_argument("--chunks", type=int, default=10)
    ap.add_argument("--compare-src", help="a second src tree, measured too")
    ap.add_argument("--keep", help="keep the callgrind dumps under this folder")
    ap.add_argument("--sdk-headers", action="store_true", help="send the header fields the installed openai "
                    "client sends (captured from it at start)")
    ap.add_argument("--calls", action="store_true", help="instead of counting, list the Python and C calls on one "
                    "stream's way up, as they nest (sys.setprofile; no valgrind), for each --surface")
    ap.add_argument("--one", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        import uvloop
        surface, streams, chunks, helper, headers_file = args.one
        headers = Path(headers_file).read_bytes() if headers_file else b""
        uvloop.run(_run(surface, int(streams), int(chunks), helper, headers))
        return 0
    srcs: list[tuple[str, str | None]] = [("compare", str(Path(args.compare_src).resolve()))] if args.compare_src else []
    srcs.append(("this", None))
    with tempfile.TemporaryDirectory() as tmp:
        helper = str(Path(tmp) / "libcgdump.so")
        if not args.calls:  # the dumps' helper: only callgrind's counts need it
            (Path(tmp) / "cgdump.c").write_bytes(_HELPER)
            subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", helper, str(Path(tmp) / "cgdump.c")], check=True)
        keep = Path(args.keep) if args.keep else Path(tmp)
        headers_file = ""
        if args.sdk_headers:
            headers = capture_sdk_headers()
            headers_file = str(Path(tmp) / "headers.bin")
            Path(headers_file).write_bytes(headers)
            fields = headers.count(b"\r\n") + 3
            print(f"{fields} header fields, as the installed openai client sends them:")
            print(headers.decode("latin-1").replace("\r\n", "\n").rstrip("\n"))
        if args.calls:
            for surface in args.surface:
                print(f"-- {surface}", flush=True)
                cmd, env = _child(srcs[0][1], surface, 1, args.chunks, "", headers_file)
                subprocess.run(cmd, env=env, check=True)
            return 0
        print(f"streams={args.streams} chunks={args.chunks}; thousands of instructions per stream "
              "(chunk: per chunk)")
        print(f"{'surface':>9} {'src':>8} " + " ".join(f"{leg:>11}" for leg in _LEGS))
        for surface in args.surface:
            for label, src in srcs:
                legs = _measure(src, surface, args.streams, args.chunks, helper, keep / f"{label}-{surface}",
                                headers_file)
                print(f"{surface:>9} {label:>8} " + " ".join(f"{legs[leg]:>11.1f}" for leg in _LEGS), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
