"""``LocalBackend``: the placement backend that runs replicas as child processes here.

Each replica is a ``SupervisedReplica`` (``placement/local.py``: process, readiness,
restart with backoff), adapted to the backend contract. GPUs are granted per replica
from this host's free ones when the runtime runs on NVIDIA GPUs and the host has any,
and given back when the replica stops.
"""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

from inferplane.placement.backend import (
    PlacementError,
    ReplicaAddress,
    ReplicaSpec,
    ReplicaStartError,
    ReplicaStateFn,
)
from inferplane.placement.local import ReplicaUp, SupervisedReplica
from inferplane.runtimes._common import nvidia_gpu_ids
from inferplane.runtimes.registry import get_adapter

__all__ = ["LocalBackend", "LocalReplica"]


class LocalReplica:
    """A ``SupervisedReplica`` seen through the ``ReplicaHandle`` contract."""

    def __init__(self, supervised: SupervisedReplica, backend: LocalBackend) -> None:
        self.supervised = supervised
        self.id = supervised.id
        self._backend = backend

    @property
    def failed(self) -> bool:
        return False  # the supervisor restarts it for as long as it is wanted

    @property
    def lost(self) -> bool:
        return False

    @property
    def pid(self) -> int | None:
        return self.supervised.pid

    async def wait_ready(self) -> None:
        try:
            await self.supervised.wait_ready()
        except RuntimeError as exc:
            raise ReplicaStartError(str(exc)) from exc

    async def stop(self, grace_s: float) -> None:
        self.supervised.stop_grace_s = grace_s
        try:
            await self.supervised.stop()
        finally:
            self._backend.release_gpus(self.supervised.resources.gpu_ids)


class LocalBackend:
    """Child processes on this machine, supervised and restarted when they exit."""

    name = "local"

    def __init__(self, *, log_dir: Path, gpu_ids: tuple[int, ...] | None = None) -> None:
        self.log_dir = log_dir
        self.node = socket.gethostname()
        self._free_gpus = list(nvidia_gpu_ids() if gpu_ids is None else gpu_ids)

    def start(self, spec: ReplicaSpec, on_state: ReplicaStateFn) -> LocalReplica:
        dep = spec.deployment
        adapter = get_adapter(dep.runtime)
        resources = spec.resources
        if not resources.gpu_ids and "nvidia" in adapter.capabilities().hardware and self._free_gpus:
            want = dep.tensor_parallel_size
            if want > len(self._free_gpus):
                raise PlacementError(f"replica {spec.replica_id} needs {want} GPU(s) but only "
                                     f"{len(self._free_gpus)} of this host's are free")
            grant, self._free_gpus = tuple(self._free_gpus[:want]), self._free_gpus[want:]
            resources = replace(resources, gpu_ids=grant)
        node = self.node

        def report(up: ReplicaUp | None) -> None:
            on_state(None if up is None else ReplicaAddress(up.url, up.metrics_url, node, up.pid))

        supervised = SupervisedReplica(
            replica_id=spec.replica_id, adapter=adapter, deployment=dep, resources=resources,
            on_state=report, log_dir=self.log_dir, ready_timeout_s=spec.ready_timeout_s,
        )
        supervised.start()
        return LocalReplica(supervised, self)

    def release_gpus(self, gpu_ids: tuple[int, ...]) -> None:
        self._free_gpus = sorted({*self._free_gpus, *gpu_ids})

    async def close(self) -> None:
        return None
