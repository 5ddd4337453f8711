"""Restart backoff of the local supervisor (issue 10.5): a replica that was ready and serving
restarts after the initial 1 s however often it was killed; only a crash loop backs off."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from inferplane.config import DeploymentConfig
from inferplane.placement import local
from inferplane.placement.local import ReplicaUp, SupervisedReplica
from inferplane.runtimes.base import (
    Availability,
    Capabilities,
    EndpointStats,
    LaunchSpec,
    ProbeSpec,
    Resources,
    RuntimeAdapter,
)

pytestmark = pytest.mark.integration


class _HttpServerAdapter(RuntimeAdapter):
    """A 'runtime' that is Python's http.server: ready as soon as it listens."""

    name = "http-server"

    def capabilities(self) -> Capabilities:
        return Capabilities(architectures=(), weight_formats=(), quantizations=(), hardware=("cpu",))

    def availability(self) -> Availability:
        return Availability(True, "python")

    def launch_spec(self, deployment: DeploymentConfig, port: int, resources: Resources) -> LaunchSpec:
        return LaunchSpec(argv=(sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)),
                          probe=ProbeSpec("/"))

    def parse_metrics(self, text: str) -> EndpointStats:
        return EndpointStats()


def test_a_replica_killed_after_serving_restarts_after_one_second_every_time(tmp_path: Path, caplog,
                                                                             monkeypatch) -> None:
    monkeypatch.setattr(local, "_STABLE_S", 0.5, raising=False)

    async def main() -> list[float]:
        ups: list[ReplicaUp | None] = []
        changed = asyncio.Event()

        def on_state(up: ReplicaUp | None) -> None:
            ups.append(up)
            changed.set()

        r = SupervisedReplica(replica_id="r-1", adapter=_HttpServerAdapter(), deployment=DeploymentConfig(name="d"),
                              resources=Resources(), on_state=on_state, log_dir=tmp_path, ready_timeout_s=30)
        r.start()
        backups = []
        try:
            await r.wait_ready()
            for _ in range(4):
                await asyncio.sleep(0.8)  # ready and serving for longer than _STABLE_S
                up = ups[-1]
                assert up is not None
                t0 = time.monotonic()
                os.kill(up.pid, signal.SIGKILL)
                while not (ups[-1] is not None and ups[-1].pid != up.pid):
                    changed.clear()
                    await changed.wait()
                backups.append(time.monotonic() - t0)
        finally:
            await r.stop()
        return backups

    with caplog.at_level(logging.WARNING):
        backups = asyncio.run(asyncio.wait_for(main(), 120))
    waits = [m.getMessage() for m in caplog.records if "restarting in" in m.getMessage()]
    assert len(waits) == 4 and all(w.endswith("restarting in 1 s") for w in waits), waits
    assert max(backups) < 15  # generous: 1 s backoff + start; before the fix it doubled to 2, 4, 8 s
