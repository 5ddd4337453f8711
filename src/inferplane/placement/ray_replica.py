"""The Ray actor that is one replica: it runs the runtime on its node, as ``serve`` would locally.

The actor is an asyncio actor (all methods on one event loop, in one thread that lives as
long as the actor, so the runtime's parent-death signal fires only when the actor dies).
Inside it a ``SupervisedReplica`` (``placement/local.py``) does what it does on a laptop:
a free port *on this node*, the adapter's launch spec, readiness probe, restart with
backoff when the runtime exits. The runtime listens on the node's address so gateways on
other nodes reach it. Lifecycle, as driven by ``RayReplica`` in ``ray_backend.py``:

1. ``start()`` launches the runtime (returns at once; the other calls start it too).
2. ``next_state(seen)`` waits until the replica's state changed after version ``seen``
   and returns ``(version, address or None)`` (a long poll: one call in flight per replica).
3. ``wait_ready()`` returns after the first readiness or raises ``RuntimeError`` with the
   runtime's log tail.
4. ``stop(grace_s)`` ends the runtime (SIGTERM, SIGKILL after ``grace_s``); the caller then
   kills the actor. If the actor or its node dies instead, the runtime dies with it
   (``PR_SET_PDEATHSIG``) and the pending ``next_state`` call fails in the gateway.

This module imports Ray only inside methods: it is imported by the actor's worker, where
Ray is there by definition.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from inferplane.config import DeploymentConfig
from inferplane.placement.local import ReplicaUp, SupervisedReplica
from inferplane.runtimes.base import Resources
from inferplane.runtimes.registry import get_adapter

__all__ = ["NodeAddress", "ReplicaActor"]


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """Where the replica serves, as plain data that crosses the Ray boundary."""

    url: str
    metrics_url: str
    node: str
    pid: int
    region: str | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class ReplicaActor:
    """One replica of a deployment on the node Ray placed this actor on."""

    def __init__(self, replica_id: str, deployment_json: str, threads: int | None, ready_timeout_s: float,
                 log_dir: str) -> None:
        self.replica_id = replica_id
        self.deployment = DeploymentConfig.model_validate_json(deployment_json)
        self.threads = threads
        self.ready_timeout_s = ready_timeout_s
        self.log_dir = Path(log_dir)
        self._version = 0
        self._address: NodeAddress | None = None
        self._changed: asyncio.Event | None = None
        self._replica: SupervisedReplica | None = None

    def _node(self) -> tuple[str, str, str | None]:
        import ray

        ctx = ray.get_runtime_context()
        labels = ctx.get_node_labels() or {}
        region = labels.get("region")
        return ctx.get_node_id(), ray.util.get_node_ip_address(), region if isinstance(region, str) else None

    async def start(self) -> None:
        """Launch the runtime (once: every other method calls it first, since Ray does not
        order concurrent calls to an asyncio actor)."""
        if self._replica is not None:
            return
        import ray

        node_id, ip, region = self._node()
        gpu_ids = tuple(int(g) for g in ray.get_gpu_ids())
        self._changed = asyncio.Event()

        def on_state(up: ReplicaUp | None) -> None:
            self._address = None if up is None else NodeAddress(up.url, up.metrics_url, node_id, up.pid, region)
            self._version += 1
            assert self._changed is not None
            self._changed.set()

        self._replica = SupervisedReplica(
            replica_id=self.replica_id, adapter=get_adapter(self.deployment.runtime), deployment=self.deployment,
            resources=Resources(threads=self.threads, gpu_ids=gpu_ids), on_state=on_state,
            log_dir=self.log_dir, ready_timeout_s=self.ready_timeout_s, host=ip,
        )
        self._replica.start()

    async def next_state(self, seen: int) -> tuple[int, dict[str, object] | None]:
        await self.start()
        assert self._changed is not None
        while self._version <= seen:
            self._changed.clear()
            await self._changed.wait()
        return self._version, None if self._address is None else self._address.as_dict()

    async def wait_ready(self) -> None:
        await self.start()
        assert self._replica is not None
        await self._replica.wait_ready()

    async def stop(self, grace_s: float) -> None:
        if self._replica is not None:
            self._replica.stop_grace_s = grace_s
            await self._replica.stop()

    def pid(self) -> int:
        return os.getpid()
