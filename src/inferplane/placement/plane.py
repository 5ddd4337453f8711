"""The control plane of one gateway: a deployment controller per deployment, one backend.

``apply`` takes a new set of deployments (reload) and works out the difference: added
ones get a controller, removed ones are drained and dropped, changed ones are updated
in place (their controller decides whether replicas must be replaced; see
``DeploymentController.update``), unchanged ones are not touched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from inferplane.config import DeploymentConfig
from inferplane.placement.backend import PlacementBackend
from inferplane.placement.controller import DeploymentController, ReplicaCounts
from inferplane.routing.registry import EndpointRegistry

__all__ = ["ApplyReport", "ControlPlane"]


@dataclass(slots=True)
class ApplyReport:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removals: list[asyncio.Task[None]] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, list[str]]:
        return {"added": self.added, "removed": self.removed, "changed": self.changed, "unchanged": self.unchanged}


class ControlPlane:
    def __init__(self, *, registry: EndpointRegistry, backend: PlacementBackend, ready_timeout_s: float,
                 cached_blocks: Callable[[str], int] = lambda _id: 0,
                 pinned_sessions: Callable[[str], int] = lambda _id: 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.backend = backend
        self.ready_timeout_s = ready_timeout_s
        self.controllers: dict[str, DeploymentController] = {}
        self._cached_blocks = cached_blocks
        self._pinned_sessions = pinned_sessions
        self._clock = clock
        self._removing: set[asyncio.Task[None]] = set()

    def add(self, deployment: DeploymentConfig, *, run_loop: bool = True) -> DeploymentController:
        ctl = DeploymentController(deployment, registry=self.registry, backend=self.backend,
                                   ready_timeout_s=self.ready_timeout_s, cached_blocks=self._cached_blocks,
                                   pinned_sessions=self._pinned_sessions, clock=self._clock)
        self.controllers[deployment.name] = ctl
        ctl.start(run_loop=run_loop)
        return ctl

    def remove(self, name: str) -> asyncio.Task[None]:
        """Drain and stop every endpoint of a deployment, then forget it (returns that task)."""
        ctl = self.controllers.pop(name)
        task = asyncio.ensure_future(ctl.stop())
        self._removing.add(task)
        task.add_done_callback(self._removing.discard)
        return task

    def apply(self, deployments: Sequence[DeploymentConfig]) -> ApplyReport:
        report = ApplyReport()
        new = {d.name: d for d in deployments}
        for name in list(self.controllers):
            if name not in new:
                report.removed.append(name)
                report.removals.append(self.remove(name))
        for d in deployments:
            ctl = self.controllers.get(d.name)
            if ctl is None:
                self.add(d)
                report.added.append(d.name)
            elif ctl.deployment == d:
                report.unchanged.append(d.name)
            else:
                ctl.update(d)
                report.changed.append(d.name)
        return report

    def find(self, endpoint_id: str) -> DeploymentController | None:
        return next((c for c in self.controllers.values() if c.owns(endpoint_id)), None)

    def counts(self) -> dict[str, ReplicaCounts]:
        return {name: c.counts() for name, c in self.controllers.items()}

    def can_serve(self, name: str) -> bool:
        """Whether the deployment answers requests now or will once a replica starts on demand."""
        ctl = self.controllers.get(name)
        return ctl is not None and (bool(self.registry.ready(name)) or ctl.on_demand)

    async def shutdown(self, drain_timeout_s: float | None = None) -> None:
        """Drain and stop every deployment (concurrently); no replica is left afterwards."""
        ctls = list(self.controllers.values())
        self.controllers.clear()
        await asyncio.gather(*(c.stop(drain_timeout_s) for c in ctls), *list(self._removing),
                             return_exceptions=True)
        await self.backend.close()
