"""The whole gateway's instructions per request, under valgrind's callgrind (``gateway_overhead.py
--instructions N``).

``inferplane serve`` runs under callgrind; once it is ready and idle (its first probe and scrape
round over), a bounded client sends a fixed number of requests, with callgrind's counters zeroed
before and dumped after (``callgrind_control -z`` / ``-d``, addressed to that process's PID only).
Two windows, of N and of 2N requests, are subtracted: what one window costs whatever its size (the
client's connections, the dump itself) cancels, and what is left is N requests' instructions. An
idle window of the same length says what the gateway spends per second with no traffic (its timers),
which the subtraction would otherwise count into the requests. Deterministic: another process's load
changes nothing but how long it takes. Then one health-check round is counted too (SIGUSR1, see
``_callgrind_site``): the per-endpoint work the gateway does every ``scrape_interval_s``, whatever its
traffic. Each window's dump is kept for ``callgrind_annotate``
(``--annotate``: the functions whose instructions grew the most between two fleet sizes).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

_REQUEST = ("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Authorization: Bearer bench-tenant-key\r\nContent-Length: {n}\r\n\r\n")


async def _client(port: int, body: bytes, requests: int, concurrency: int) -> int:
    """Send ``requests`` POSTs over ``concurrency`` keep-alive connections; the number answered 200."""
    head = _REQUEST.format(n=len(body)).encode() + body
    left = [requests]
    ok = [0]

    async def one_connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while left[0] > 0:
                left[0] -= 1
                writer.write(head)
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                ok[0] += status_line.split(b" ", 2)[1] == b"200"
        finally:
            writer.close()

    await asyncio.gather(*(one_connection() for _ in range(min(concurrency, requests))))
    return ok[0]


def send(port: int, body: bytes, requests: int, concurrency: int) -> None:
    ok = asyncio.run(_client(port, body, requests, concurrency))
    if ok != requests:
        raise RuntimeError(f"only {ok} of {requests} requests answered 200")


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def settle(pid: int, quiet_s: float = 3.0, timeout_s: float = 900.0) -> None:
    """Wait until ``pid`` used (almost) no CPU for ``quiet_s`` (its start-up probes are over)."""
    deadline = time.monotonic() + timeout_s
    last = _cpu_ticks(pid)
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _cpu_ticks(pid)
        if now - last > 2:  # more than 20 ms of CPU in half a second: still busy
            quiet_since = time.monotonic()
        last = now
        if time.monotonic() - quiet_since >= quiet_s:
            return
    raise RuntimeError(f"pid {pid} did not go quiet within {timeout_s:.0f} s")


class Callgrind:
    """One process under callgrind, its counters zeroed and dumped on demand."""

    def __init__(self, pid: int, out_dir: Path) -> None:
        self.pid = pid
        self.out_dir = out_dir
        self._dumps = 0

    def _control(self, flag: str) -> None:
        if not isinstance(self.pid, int) or self.pid <= 0:  # without a PID callgrind_control asks *every* process
            raise ValueError("no PID")
        subprocess.run(["callgrind_control", flag, str(self.pid)], check=True, capture_output=True)

    def instrument(self) -> None:
        self._control("--instr=on")

    def zero(self) -> None:
        self._control("-z")

    def dump(self) -> tuple[int, Path]:
        """(instructions since the last zero, the dump's file)."""
        self._control("-d")
        self._dumps += 1
        path = self.out_dir / f"cg.{self.pid}.out.{self._dumps}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if path.exists():
                m = re.search(r"^summary: (\d+)", path.read_text(errors="replace"), re.M)
                if m:
                    return int(m.group(1)), path
            time.sleep(0.2)
        raise RuntimeError(f"no callgrind dump at {path}")


def valgrind_argv(out_dir: Path) -> list[str]:
    """Start uninstrumented (several times faster: start-up and the first probe round); ``measure``
    turns instrumentation on once the gateway is ready and idle. The gateway is started with
    ``_callgrind_site`` on its path, which lengthens its health probes' timeout: under valgrind a
    round of 1,000 probes takes longer than the 2 s a probe may take natively."""
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_dir}/cg.%p.out"]


def measure(pid: int, port: int, out_dir: Path, body: bytes, requests: int,
            concurrency: int) -> dict[str, object]:
    """Instructions per request (thousands) of the gateway ``pid``, and per idle second."""
    cg = Callgrind(pid, out_dir)
    settle(pid)
    cg.instrument()
    send(port, body, min(200, requests), concurrency)  # warm: connections, caches, the prefix index
    settle(pid, quiet_s=1.0)
    cg.zero()
    t0 = time.monotonic()
    send(port, body, requests, concurrency)
    t1 = time.monotonic()
    a, _ = cg.dump()
    cg.zero()
    t2 = time.monotonic()
    send(port, body, 2 * requests, concurrency)
    t3 = time.monotonic()
    b, path = cg.dump()
    cg.zero()
    idle_s = (t3 - t2) - (t1 - t0)
    time.sleep(idle_s)
    idle, _ = cg.dump()
    per_s = idle / idle_s
    cg.zero()  # one health-check round (probe + metrics scrape of every endpoint), on SIGUSR1
    os.kill(pid, signal.SIGUSR1)
    time.sleep(1.0)
    settle(pid, quiet_s=2.0)
    scrape, _ = cg.dump()
    return {"kinstr": (b - a - per_s * idle_s) / requests / 1e3, "raw_kinstr": (b - a) / requests / 1e3,
            "idle_kinstr_per_s": per_s / 1e3, "round_kinstr": (scrape - per_s * 3.0) / 1e3, "dump": str(path)}


def annotate(path: str | Path, top: int = 40) -> dict[str, int]:
    """Instructions by function (self cost) in one dump, per ``callgrind_annotate``."""
    out = subprocess.run(["callgrind_annotate", "--threshold=100", str(path)], capture_output=True,
                         text=True, check=True).stdout
    costs: dict[str, int] = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(\S.*?)\s*(?:\[.*\])?$", line)
        if m and ":" in m.group(2):
            costs[m.group(2)] = costs.get(m.group(2), 0) + int(m.group(1).replace(",", ""))
    return costs


def print_growth(small: dict[str, int], large: dict[str, int], requests: int, labels: tuple[str, str],
                 top: int = 25) -> None:
    """The functions whose instructions per request grew the most from ``small`` to ``large``."""
    keys = set(small) | set(large)
    rows = sorted(keys, key=lambda k: large.get(k, 0) - small.get(k, 0), reverse=True)[:top]
    print(f"  instructions per request by function (self), {labels[0]} -> {labels[1]}, largest growth first:")
    for k in rows:
        s, g = small.get(k, 0) / (2 * requests), large.get(k, 0) / (2 * requests)
        print(f"    {s:>9.0f} -> {g:>9.0f}  {g - s:>+9.0f}  {k[-110:]}")


def environment(src: str | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


if __name__ == "__main__":  # a smoke test: python benchmarks/_gateway_callgrind.py PORT BODY_CHARS N
    send(int(sys.argv[1]), b"x" * int(sys.argv[2]), int(sys.argv[3]), 8)
