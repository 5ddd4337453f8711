"""Helpers shared by the tests: starting `inferplane serve`, process trees, free ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServeProcess", "children_of", "free_port", "http_get", "start_serve"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def children_of(pid: int) -> list[int]:
    """All descendants of ``pid`` (from /proc), and processes in its session."""
    parents: dict[int, int] = {}
    sessions: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry.name)] = int(fields[1])
        sessions[int(entry.name)] = int(fields[3])
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        frontier += kids
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class ServeProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def endpoints(self) -> list[dict]:
        status, body = http_get(self.url + "/admin/endpoints")
        assert status == 200
        return json.loads(body)["endpoints"]

    def runtime_pids(self) -> list[int]:
        return [p for p in children_of(self.proc.pid) if alive(p)]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


def start_serve(args: list[str], tmp: Path, *, ready_timeout: float = 180.0, wait_ready: bool = True,
                env: dict[str, str] | None = None) -> ServeProcess:
    """Start `inferplane serve --port <free> <args>` and wait until /ready says 200."""
    port = free_port()
    log_path = tmp / f"serve-{port}.log"
    cmd = [sys.executable, "-m", "inferplane", "serve", "--port", str(port),
           "--log-dir", str(tmp / "replica-logs"), *args]
    logf = log_path.open("wb")
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    sp = ServeProcess(proc, port, log_path)
    if not wait_ready:
        return sp
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"inferplane serve exited with {proc.returncode}:\n{sp.log()}")
        try:
            status, _ = http_get(sp.url + "/ready", timeout=2)
            if status == 200:
                return sp
        except OSError:
            pass
        time.sleep(0.3)
    sp.stop()
    raise RuntimeError(f"inferplane serve not ready after {ready_timeout} s:\n{sp.log()}")
