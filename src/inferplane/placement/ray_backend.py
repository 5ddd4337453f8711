"""``RayBackend``: the placement backend that runs each replica as a Ray actor on a cluster node.

The same deployment file as on a laptop; ``placement: {backend: ray}`` changes only where
replicas run. Per replica (``RayReplica``):

1. ``start`` creates a ``ReplicaActor`` (``ray_replica.py``) with the deployment's needs as
   Ray resources: ``num_cpus`` = its threads, ``num_gpus`` = ``tensor_parallel_size`` for a
   GPU runtime on a cluster with GPUs, ``memory`` = ``placement.memory_bytes``, custom
   ``placement.resources``; ``label_selector`` = ``placement.node_labels``; the scheduling
   strategy ``SPREAD`` (``strategy: spread``, the default, as Ray Serve spreads replicas)
   or Ray's default packing (``strategy: pack``). Ray picks the node; the actor launches the
   runtime there through the adapter's launch spec, on a port free on that node.
2. A watcher task long-polls the actor's ``next_state`` and reports each address (the
   node's IP and the runtime's port, the node id, the node's ``region`` label) or its loss
   to the controller. The gateway then routes to it like to any other endpoint: Ray is off
   the request path.
3. Faults: when the actor's node dies (or the actor does), Ray fails the pending
   ``next_state`` call with ``RayActorError`` as soon as its own health checks mark the node
   dead; the replica leaves the pool at once and counts as ``lost``, so the controller
   starts a replacement without backoff, on whatever node Ray picks (a node that joined
   meanwhile included). Actors are created with ``max_restarts=0``: replacing is the
   controller's job, as Ray Serve's controller replaces dead replicas.
4. ``stop`` asks the actor to end its runtime, then kills the actor. Actors are not
   detached: if ``serve`` dies, Ray ends its actors (their owner is gone) and each runtime
   dies with its actor.

Ray is an optional dependency: without it, ``RayBackend.connect`` raises ``PlacementError``
with the install command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from inferplane.config.placement import PlacementConfig
from inferplane.placement.backend import (
    PlacementError,
    ReplicaAddress,
    ReplicaSpec,
    ReplicaStartError,
    ReplicaStateFn,
)
from inferplane.runtimes.registry import get_adapter

__all__ = ["INSTALL_HINT", "RayBackend", "RayReplica", "import_ray"]

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'inferplane[ray]'"


def import_ray() -> Any:
    """The ``ray`` module; raises PlacementError saying how to install it when it is missing."""
    try:
        import ray
    except ImportError as exc:
        raise PlacementError(f"placement backend 'ray' needs Ray, which is not installed: {INSTALL_HINT}") from exc
    return ray


def _aw(ref: Any) -> asyncio.Future[Any]:
    """An ObjectRef as an asyncio future of this loop."""
    return asyncio.wrap_future(ref.future())


class RayReplica:
    """One replica as a Ray actor, seen through the ``ReplicaHandle`` contract."""

    def __init__(self, backend: RayBackend, spec: ReplicaSpec, actor: Any, on_state: ReplicaStateFn) -> None:
        self.id = spec.replica_id
        self._ray = backend.ray
        self._actor = actor
        self._on_state = on_state
        self._ready_timeout_s = spec.ready_timeout_s
        self._needs = backend.describe_needs(spec)
        self._address: ReplicaAddress | None = None
        self._failed = self._lost = self._stopping = False
        self._first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tasks = [asyncio.create_task(self._watch(), name=f"ray-watch-{self.id}"),
                       asyncio.create_task(self._first_readiness(), name=f"ray-ready-{self.id}")]

    @property
    def failed(self) -> bool:
        return self._failed

    @property
    def lost(self) -> bool:
        return self._lost

    @property
    def pid(self) -> int | None:
        return self._address.pid if self._address is not None else None

    @property
    def address(self) -> ReplicaAddress | None:
        return self._address

    async def _watch(self) -> None:
        errors = self._ray.exceptions
        seen = 0
        try:
            await _aw(self._actor.start.remote())
            while True:
                seen, addr = await _aw(self._actor.next_state.remote(seen))
                self._address = None if addr is None else ReplicaAddress(**addr)
                self._on_state(self._address)
        except errors.RayActorError as exc:
            if self._stopping:
                return
            self._address = None
            self._failed = self._lost = True
            self._on_state(None)
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            log.warning("replica %s: its Ray actor is gone (%s); the controller replaces it", self.id, reason)
            self._fail_first(f"replica {self.id}: its Ray actor died before it was ready ({reason})")
        except errors.RayTaskError as exc:  # a bug in the actor: give up on this one
            if not self._stopping:
                self._failed = True
                self._on_state(None)
                log.error("replica %s: its Ray actor failed: %s", self.id, exc)

    async def _first_readiness(self) -> None:
        errors = self._ray.exceptions
        try:
            await asyncio.wait_for(_aw(self._actor.wait_ready.remote()), self._ready_timeout_s)
        except TimeoutError:
            self._fail_first(f"replica {self.id} not ready after {self._ready_timeout_s:.0f} s on the Ray cluster "
                             f"(it needs {self._needs}; `ray status` shows what the nodes have)")
        except errors.RayTaskError as exc:
            cause = getattr(exc, "cause", None) or exc
            self._fail_first(str(cause))
        except errors.RayActorError as exc:
            self._fail_first(f"replica {self.id}: its Ray actor died before it was ready: {exc}")
        else:
            if not self._first.done():
                self._first.set_result(None)

    def _fail_first(self, message: str) -> None:
        if not self._first.done():
            log.error("%s", message)
            self._first.set_exception(ReplicaStartError(message))

    async def wait_ready(self) -> None:
        await asyncio.shield(self._first)

    async def stop(self, grace_s: float) -> None:
        self._stopping = True
        errors = self._ray.exceptions
        with contextlib.suppress(errors.RayActorError, errors.RayTaskError, TimeoutError):
            await asyncio.wait_for(_aw(self._actor.stop.remote(grace_s)), grace_s + 10.0)
        with contextlib.suppress(Exception):  # already dead, or the cluster is gone: nothing to kill
            self._ray.kill(self._actor, no_restart=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._address is not None:
            self._address = None
            self._on_state(None)
        if not self._first.done():
            self._first.set_exception(ReplicaStartError("stopped before ready"))
        self._first.exception()  # mark retrieved: nobody may be waiting any more


class RayBackend:
    """Replicas as Ray actors on the nodes of a Ray cluster (see the module docstring)."""

    name = "ray"

    def __init__(self, ray: Any, config: PlacementConfig, *, log_dir: Path, started_cluster: bool) -> None:
        self.ray = ray
        self.config = config
        self.log_dir = log_dir
        self.started_cluster = started_cluster
        self._actor_class = ray.remote(_actor_class())
        self._gpus = float(ray.cluster_resources().get("GPU", 0))

    @classmethod
    async def connect(cls, config: PlacementConfig, *, log_dir: Path) -> RayBackend:
        """Join (or start, for ``address: local``) the cluster; raises PlacementError saying why not."""
        ray = import_ray()
        local = config.address == "local"
        kwargs: dict[str, Any] = {"namespace": config.namespace, "log_to_driver": False,
                                  "ignore_reinit_error": True}
        if local:
            kwargs["include_dashboard"] = False
        else:
            kwargs["address"] = config.address
        try:
            await asyncio.to_thread(ray.init, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = "a local one" if local else repr(config.address)
            raise PlacementError(f"cannot join the Ray cluster ({where}): {exc}. Start one with `ray start "
                                 "--head`, set RAY_ADDRESS, or use placement.address: local") from exc
        return cls(ray, config, log_dir=log_dir, started_cluster=local)

    def options(self, spec: ReplicaSpec) -> dict[str, Any]:
        """The Ray actor options for one replica of ``spec.deployment`` (pure; see the module docstring)."""
        dep = spec.deployment
        p = dep.placement
        caps = get_adapter(dep.runtime).capabilities()
        opts: dict[str, Any] = {
            "num_cpus": float(spec.resources.threads or dep.threads or 1),
            "num_gpus": float(dep.tensor_parallel_size) if "nvidia" in caps.hardware and self._gpus > 0 else 0.0,
            "max_restarts": 0,
            "max_task_retries": 0,
            "scheduling_strategy": "SPREAD" if p.strategy == "spread" else "DEFAULT",
        }
        if p.memory_bytes:
            opts["memory"] = p.memory_bytes
        if p.resources:
            opts["resources"] = dict(p.resources)
        if p.node_labels:
            opts["label_selector"] = dict(p.node_labels)
        return opts

    def describe_needs(self, spec: ReplicaSpec) -> str:
        o = self.options(spec)
        parts = [f"{o['num_cpus']:g} CPU"]
        if o["num_gpus"]:
            parts.append(f"{o['num_gpus']:g} GPU")
        if "memory" in o:
            parts.append(f"{o['memory']} bytes of memory")
        parts += [f"{v:g} {k}" for k, v in o.get("resources", {}).items()]
        if "label_selector" in o:
            parts.append("node labels " + ", ".join(f"{k}={v}" for k, v in o["label_selector"].items()))
        return ", ".join(parts)

    def start(self, spec: ReplicaSpec, on_state: ReplicaStateFn) -> RayReplica:
        dep = spec.deployment
        try:
            actor = self._actor_class.options(**self.options(spec)).remote(
                spec.replica_id, dep.model_dump_json(), spec.resources.threads or dep.threads,
                spec.ready_timeout_s, str(self.log_dir))
        except (ValueError, TypeError) as exc:
            raise PlacementError(f"replica {spec.replica_id}: Ray refused the actor: {exc}") from exc
        return RayReplica(self, spec, actor, on_state)

    async def close(self) -> None:
        """Leave the cluster (and stop it, if ``serve`` started it): Ray ends any actor still owned."""
        await asyncio.to_thread(self.ray.shutdown)


def _actor_class() -> type:
    from inferplane.placement.ray_replica import ReplicaActor

    return ReplicaActor
