"""Shared parts of the fault and soak runs: a bounded load of clients that honour Retry-After,
and `inferplane serve` started and stopped by PID.

A plain client sends a chat completion, and on 429/503 waits what Retry-After says (at
most ``max_wait_s`` in all) and sends it again; any other non-200, or a connection
error, is a failed request. A stream client reads SSE and records how each stream
ended: ``done`` (``data: [DONE]``), ``error_event`` (the gateway's explicit error event),
``silent_cut`` (the connection ended with neither), or ``http_<status>``.
"""

from __future__ import annotations

import collections
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Load", "Serve", "free_port", "get_json", "open_fds", "rss_kib"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Serve:
    """`inferplane serve ARGS` on a free port; ``stop()`` by PID (SIGTERM, then SIGKILL)."""

    def __init__(self, args: list[str], log_dir: Path, ready_timeout_s: float = 300) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / "serve.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as logf:
            self.proc = subprocess.Popen([sys.executable, "-m", "inferplane", "serve", "--port", str(self.port),
                                          "--log-dir", str(log_dir / "replicas"), *args],
                                         stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log_path.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.url + "/ready", timeout=2).close()
                return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("serve not ready in time")

    def endpoints(self) -> list[dict]:
        return get_json(self.url + "/admin/endpoints")["endpoints"]

    def metric(self, prefix: str) -> float:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(prefix))

    def metric_where(self, name: str, *values: str) -> float:
        """Sum of the samples of ``name`` whose labels contain every one of ``values`` (quoted)."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
                   if ln.startswith(name + "{") and all(f'"{v}"' in ln for v in values))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@dataclass
class Load:
    """Bounded load: ``plain`` + ``streams`` client threads until ``stop()`` (or ``max_requests``)."""

    url: str
    model: str
    plain: int = 2
    streams: int = 1
    max_tokens: int = 16
    max_wait_s: float = 60.0
    max_requests: int = 1_000_000
    body_extra: dict = field(default_factory=dict)
    sent = 0
    """Plain requests and streams started."""
    succeeded = 0
    """Plain requests answered 200."""
    failed = 0
    """Plain requests that got an error (after waiting out any Retry-After)."""
    retried_after = 0
    """429/503 answers a client waited out (Retry-After) and resent."""
    failures: collections.Counter = field(default_factory=collections.Counter)
    stream_ends: collections.Counter = field(default_factory=collections.Counter)
    latencies: list[tuple[float, float]] = field(default_factory=list)
    """(start time, seconds) of each successful plain request."""
    stream_times: list[tuple[float, float, str]] = field(default_factory=list)
    """(start time, seconds, how it ended) of each stream."""

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        host, port = self.url.removeprefix("http://").split(":")
        self._addr = (host, int(port))
        self._threads = [threading.Thread(target=self._plain_loop, daemon=True) for _ in range(self.plain)]
        self._threads += [threading.Thread(target=self._stream_loop, daemon=True) for _ in range(self.streams)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(120)

    def _body(self, stream: bool) -> bytes:
        return json.dumps({"model": self.model, "max_tokens": self.max_tokens, "stream": stream,
                           "messages": [{"role": "user", "content": "Tell me about the sea."}],
                           **self.body_extra}).encode()

    def _take(self) -> bool:
        with self._lock:
            if self._stop.is_set() or self.sent >= self.max_requests:
                return False
            self.sent += 1
            return True

    def _conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(*self._addr, timeout=120)

    def _plain_loop(self) -> None:
        conn = self._conn()
        while self._take():
            t0 = time.monotonic()
            waited = 0.0
            while True:
                try:
                    conn.request("POST", "/v1/chat/completions", self._body(False),
                                 {"Content-Type": "application/json"})
                    r = conn.getresponse()
                    data = r.read()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    conn = self._conn()
                    self._fail(f"connection: {type(exc).__name__}")
                    break
                if r.status in (429, 503) and waited < self.max_wait_s:
                    wait = float(r.getheader("Retry-After") or 0)
                    if wait <= 0:
                        self._fail(f"{r.status} without Retry-After")
                        break
                    with self._lock:
                        self.retried_after += 1
                    waited += wait
                    time.sleep(wait)
                    continue
                if r.status == 200 and b'"choices"' in data:
                    with self._lock:
                        self.succeeded += 1
                        self.latencies.append((t0, time.monotonic() - t0))
                else:
                    self._fail(f"http {r.status}: {data[:120]!r}")
                break

    def _fail(self, why: str) -> None:
        with self._lock:
            self.failed += 1
            self.failures[why[:90]] += 1

    def _stream_loop(self) -> None:
        while self._take():
            t0 = time.monotonic()
            conn = self._conn()
            end = "silent_cut"
            try:
                conn.request("POST", "/v1/chat/completions", self._body(True), {"Content-Type": "application/json"})
                r = conn.getresponse()
                if r.status != 200:
                    r.read()
                    end = f"http_{r.status}"
                else:
                    for line in r:
                        if line.startswith(b"data: [DONE]"):
                            end = "done"
                        elif line.startswith(b'data: {"error"'):
                            end = "error_event"
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            with self._lock:
                self.stream_ends[end] += 1
                self.stream_times.append((t0, time.monotonic() - t0, end))
            if end.startswith("http_"):
                time.sleep(1.0)  # a client backs off before trying again

    def summary(self) -> str:
        ends = ", ".join(f"{k} {v}" for k, v in sorted(self.stream_ends.items())) or "none"
        streams = sum(self.stream_ends.values())
        lines = [f"plain requests: sent {self.succeeded + self.failed}, succeeded {self.succeeded}, failed "
                 f"{self.failed} (429/503 answers waited out via Retry-After and resent: {self.retried_after})"
                 ] if self.plain else []
        cut = self.stream_ends["error_event"] + self.stream_ends["silent_cut"]
        refused = streams - cut - self.stream_ends["done"]
        lines.append(f"streams: sent {streams}, ended: {ends} (cut after they started: {cut}, of which silent: "
                     f"{self.stream_ends['silent_cut']}; refused before starting: {refused})")
        lines += [f"  failure: {n} x {why}" for why, n in self.failures.most_common(8)]
        return "\n".join(lines)
