"""``serve --workers N``: N gateway processes on one port, one control plane.

The process the user started is the *primary*: it listens on the port with SO_REUSEPORT,
runs the control plane (launches, supervises, scales and replaces the replicas) and also
listens on a private loopback port. It then starts N - 1 *follower* processes, each an
``inferplane serve`` of the same (prepared) deployment file with ``placement.follow`` set
to that private port, listening on the same port with SO_REUSEPORT: the kernel spreads
new connections over all N. Followers launch nothing; they mirror the primary's replicas
from its endpoint feed (``placement/feed.py``) and scrape the runtimes' metrics themselves.

Followers die with the primary (``PR_SET_PDEATHSIG``); on shutdown the primary sends each
SIGTERM (each drains its own requests) and waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import orjson

from inferplane.config import DeploymentConfig, InferplaneConfig

__all__ = ["FollowerProcesses"]

log = logging.getLogger(__name__)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class FollowerProcesses:
    """The N - 1 follower gateways of a primary (see the module docstring)."""

    def __init__(self, config: InferplaneConfig, deployments: tuple[DeploymentConfig, ...], *, count: int,
                 port: int, primary_url: str, log_dir: Path, say: Callable[[str], None]) -> None:
        self.count = count
        self.log_dir = log_dir
        self.say = say
        self.config = config.model_copy(update={
            "deployments": deployments,
            "gateway": config.gateway.model_copy(update={"port": port}),
            "placement": config.placement.model_copy(update={"follow": primary_url}),
        })
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        path = self.log_dir / f"follower-config-{os.getpid()}.json"
        path.write_bytes(orjson.dumps(self.config.model_dump(mode="json")))
        for i in range(1, self.count):
            logf = (self.log_dir / f"gateway-worker-{i}.log").open("ab")
            try:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "inferplane", "serve", "--config", str(path), "--reuse-port",
                    "--log-dir", str(self.log_dir), stdin=asyncio.subprocess.DEVNULL, stdout=logf,
                    stderr=asyncio.subprocess.STDOUT, preexec_fn=_die_with_parent)
            finally:
                logf.close()
            self.procs.append(proc)
        self.say(f"gateway workers: this process (pid {os.getpid()}) runs the control plane; "
                 f"{self.count - 1} follower process(es) share the port (pids "
                 f"{', '.join(str(p.pid) for p in self.procs)}; logs in {self.log_dir})")

    async def stop(self, timeout_s: float) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            if proc.returncode not in (0, -signal.SIGTERM):
                log.warning("gateway worker pid %s exited with %s", proc.pid, proc.returncode)
