"""The placement backend contract: where and how a replica of a deployment runs.

A backend starts replicas and stops them; it knows nothing of traffic. The deployment
controller is its only caller. Lifecycle of one replica:

1. ``backend.start(spec, on_state)`` returns a ``ReplicaHandle`` at once; the replica
   starts in the background (a local process, a Ray actor, ...).
2. Each time the replica becomes able to serve, the backend calls
   ``on_state(ReplicaAddress(...))`` (where it serves, which node); each time it stops
   being able to (the process died, the node went away) ``on_state(None)``. A backend
   that restarts replicas on its own (the local supervisor does) reports each restart
   this way; the handle stays the same.
3. ``await handle.wait_ready()`` returns after the first readiness or raises
   ``ReplicaStartError`` (with the runtime's log tail) if the first start failed.
   ``handle.failed`` is set when the backend gave up on the replica for good;
   ``handle.lost`` as well when that was no fault of the replica's (its node died): the
   controller then starts its replacement at once instead of backing off.
4. ``await handle.stop(grace_s)`` ends it: the runtime gets ``grace_s`` to exit after
   being asked to, then is killed. Draining traffic first is the controller's job (it
   knows what is in flight); ``stop`` is only called once nothing is. After ``stop``
   returns no process or actor of the replica is left.
5. ``await backend.close()`` after every replica was stopped.

Implementations: ``LocalBackend`` (child processes on this machine), ``RayBackend``
(``placement/ray_backend.py``: one Ray actor per replica, on the node Ray picks).
Everything runs on the gateway's event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from inferplane.config import DeploymentConfig
from inferplane.errors import InferplaneError
from inferplane.runtimes.base import Resources

__all__ = ["PlacementBackend", "PlacementError", "ReplicaAddress", "ReplicaHandle", "ReplicaSpec",
           "ReplicaStartError", "ReplicaStateFn"]


class PlacementError(InferplaneError):
    """The backend cannot place this replica (no GPUs left, cluster unreachable); says why."""


class ReplicaStartError(RuntimeError):
    """The replica's first start failed; the message carries the runtime's log tail."""


@dataclass(frozen=True, slots=True)
class ReplicaSpec:
    """What to run: one replica of ``deployment`` under the endpoint id ``replica_id``."""

    replica_id: str
    deployment: DeploymentConfig
    resources: Resources
    ready_timeout_s: float


@dataclass(frozen=True, slots=True)
class ReplicaAddress:
    """Where a ready replica serves."""

    url: str
    metrics_url: str
    node: str
    pid: int | None = None
    region: str | None = None
    """The ``region`` label of the node it runs on, if the node has one (it wins over the
    deployment's ``region``, so tiered routing follows where the replica really is)."""


ReplicaStateFn = Callable[[ReplicaAddress | None], None]


class ReplicaHandle(Protocol):
    id: str

    @property
    def failed(self) -> bool:
        """The backend gave up on this replica (it will not be restarted)."""
        ...

    @property
    def lost(self) -> bool:
        """Failed through no fault of its own (its node died): replace it without backoff."""
        ...

    @property
    def pid(self) -> int | None: ...

    async def wait_ready(self) -> None: ...

    async def stop(self, grace_s: float) -> None: ...


class PlacementBackend(Protocol):
    name: str

    def start(self, spec: ReplicaSpec, on_state: ReplicaStateFn) -> ReplicaHandle:
        """Begin running the replica; raises PlacementError when it cannot be placed at all."""
        ...

    async def close(self) -> None: ...
