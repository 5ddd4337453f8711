"""The local process supervisor: launches runtime replicas as child processes and keeps them up.

Lifecycle of one ``SupervisedReplica``:

1. ``start()`` takes a fresh loopback port, builds the adapter's launch spec and spawns
   the process in its own session (Ctrl-C in a terminal does not reach it directly) with
   ``PR_SET_PDEATHSIG`` = SIGKILL, so it dies with the gateway even if the gateway is
   killed with SIGKILL. stdout and stderr go to ``<log_dir>/<endpoint-id>.log``.
2. Readiness: the launch spec's probe is polled until it answers 2xx; then the endpoint
   is reported ready through ``on_state(ReplicaUp(...))``. If the process exits first, or the readiness timeout
   passes, the attempt failed.
3. A watcher waits for the process to exit; ``on_state(None)`` is called at once and
   the process is restarted on a fresh port (llama.cpp may fail to bind the port it just
   left) after an exponential backoff: 1 s doubling to 30 s while launches fail (exit
   before ready, readiness timeout) or the replica dies within ``_STABLE_S`` of becoming
   ready (a crash loop); a replica that became ready and served for longer restarts
   after the initial 1 s again, however often it has been killed before.
4. ``stop()`` sends SIGTERM to the process group, waits ``stop_grace_s``, then SIGKILL.
   After ``stop()`` returns, no process of this replica is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp

from inferplane.config import DeploymentConfig
from inferplane.placement.ports import free_port
from inferplane.runtimes.base import LaunchSpec, Resources, RuntimeAdapter
from inferplane.runtimes.probe import probe_once

__all__ = ["ReplicaStateFn", "ReplicaUp", "SupervisedReplica"]

ReplicaStateFn = Callable[["ReplicaUp | None"], None]
"""Called with where the replica serves when it becomes ready, and with None when it goes down."""


@dataclass(frozen=True, slots=True)
class ReplicaUp:
    url: str
    metrics_url: str
    pid: int

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_STABLE_S = 5.0
"""Ready this long before exiting: the exit resets the restart backoff (shorter is a crash loop)."""


def _write_files(files: tuple[tuple[str, str], ...]) -> None:
    for path, text in files:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class SupervisedReplica:
    """One local replica of a deployment: its process, its endpoint, its restarts."""

    def __init__(
        self,
        *,
        replica_id: str,
        adapter: RuntimeAdapter,
        deployment: DeploymentConfig,
        resources: Resources,
        on_state: ReplicaStateFn,
        log_dir: Path,
        ready_timeout_s: float,
        stop_grace_s: float = 10.0,
        max_backoff_s: float = 30.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.adapter = adapter
        self.deployment = deployment
        self.resources = resources
        self.id = replica_id
        self.on_state = on_state
        self.url = ""
        self.ready_timeout_s = ready_timeout_s
        self.stop_grace_s = stop_grace_s
        self.max_backoff_s = max_backoff_s
        self.host = host
        """Where the runtime listens (and is probed): loopback, or the node's address under Ray."""
        self.log_path = log_dir / f"{replica_id}.log"
        self.restarts = 0
        self.last_spec: LaunchSpec | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._first_ready = asyncio.get_running_loop().create_future()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    def start(self) -> None:
        """Begin supervising (returns at once; see ``wait_ready``)."""
        self._task = asyncio.create_task(self._run(), name=f"supervise-{self.id}")

    async def wait_ready(self) -> None:
        """Wait until the first successful readiness; raises ``RuntimeError`` if it fails."""
        await asyncio.shield(self._first_ready)

    async def _run(self) -> None:
        backoff = 1.0
        async with aiohttp.ClientSession() as session:
            while not self._stopping:
                ok = await self._launch_once(session)
                if self._stopping:
                    break
                if ok and self._proc is not None:
                    ready_at = time.monotonic()
                    code = await self._proc.wait()
                    self.on_state(None)
                    if self._stopping:
                        break
                    if time.monotonic() - ready_at >= _STABLE_S:
                        backoff = 1.0  # it was ready and serving: not a crash loop
                    log.warning("replica %s exited with code %s; restarting in %.0f s", self.id, code, backoff)
                self.restarts += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    async def _launch_once(self, session: aiohttp.ClientSession) -> bool:
        port = free_port(self.host)
        dep = self.deployment
        spec = self.adapter.launch_spec(dep, port, replace(self.resources, aux_port=free_port(self.host),
                                                           host=self.host))
        self.last_spec = spec
        self.url = f"http://{self.host}:{port}"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        _write_files(spec.files)  # options files the argv names (TensorRT-LLM's YAML)
        logf = self.log_path.open("ab")
        try:
            logf.write(f"\n=== inferplane: starting {' '.join(spec.argv)}\n".encode())
            logf.flush()
            self._proc = await asyncio.create_subprocess_exec(
                *spec.argv,
                env={**os.environ, **spec.env},
                cwd=spec.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logf,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            self._fail_first(f"cannot start {spec.argv[0]}: {exc}")
            return False
        finally:
            logf.close()
        proc = self._proc
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline and not self._stopping:
            if proc.returncode is not None:
                tail = _tail(self.log_path)
                last = next((ln.strip() for ln in reversed(tail.splitlines()) if ln.strip()), "it printed nothing")
                self._fail_first(  # the runtime's last word first; its log's end for context
                    f"replica {self.id} exited with code {proc.returncode} before it was ready: {last}\n"
                    f"  log: {self.log_path}, ending:\n" + "\n".join(f"  | {ln}" for ln in tail.splitlines())
                )
                return False
            if await probe_once(session, self.url, spec.probe, timeout_s=2.0):
                self.on_state(ReplicaUp(self.url, self._metrics_url(spec, port), proc.pid))
                if not self._first_ready.done():
                    self._first_ready.set_result(None)
                log.info("replica %s ready at %s (pid %s)", self.id, self.url, proc.pid)
                return True
            await asyncio.sleep(0.05)  # a held request waits for this probe: poll often
        if not self._stopping:
            self._fail_first(
                f"replica {self.id} not ready after {self.ready_timeout_s:.0f} s; see {self.log_path}"
            )
            await self._terminate()
        return False

    def _metrics_url(self, spec: LaunchSpec, port: int) -> str:
        return f"http://{self.host}:{spec.metrics_port or port}{spec.metrics_path}"

    def _fail_first(self, message: str) -> None:
        log.error("%s", message)
        if not self._first_ready.done():
            self._first_ready.set_exception(RuntimeError(message))

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.stop_grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def stop(self) -> None:
        """Stop supervising and end the process (SIGTERM, then SIGKILL after the grace)."""
        self._stopping = True
        self.on_state(None)
        await self._terminate()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if not self._first_ready.done():
            self._first_ready.set_exception(RuntimeError("stopped before ready"))
        self._first_ready.exception()  # mark retrieved: nobody may be waiting any more


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
