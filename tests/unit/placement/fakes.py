"""A fake placement backend and clock for driving the deployment controller in tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from inferplane.placement.backend import (
    PlacementError,
    ReplicaAddress,
    ReplicaSpec,
    ReplicaStartError,
    ReplicaStateFn,
)


class FakeClock:
    """Time that moves only when slept on (or advanced)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, dt: float) -> None:
        self.now += dt
        await asyncio.sleep(0)


@dataclass
class FakeHandle:
    id: str
    spec: ReplicaSpec
    on_state: ReplicaStateFn
    port: int
    stopped: bool = False
    failed: bool = False
    lost: bool = False
    pid: int | None = None
    _first: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def become_ready(self, *, node: str = "fake-node", region: str | None = None) -> None:
        self.on_state(ReplicaAddress(f"http://127.0.0.1:{self.port}", f"http://127.0.0.1:{self.port}/metrics",
                                     node, 4242, region))
        if not self._first.done():
            self._first.set_result(None)

    def crash(self) -> None:
        self.on_state(None)

    def lose_node(self) -> None:
        """Its node died: the backend reports it gone for good, through no fault of its own."""
        self.on_state(None)
        self.failed = self.lost = True

    def give_up(self) -> None:
        """The backend failed to start it and will not try again."""
        self.failed = True
        if not self._first.done():
            self._first.set_exception(ReplicaStartError("model file is not a GGUF file"))

    async def wait_ready(self) -> None:
        await asyncio.shield(self._first)

    async def stop(self, grace_s: float) -> None:
        self.stopped = True
        self.on_state(None)


class FakeBackend:
    name = "fake"

    def __init__(self) -> None:
        self.handles: list[FakeHandle] = []
        self.refuse: str | None = None
        self._port = 20000

    def start(self, spec: ReplicaSpec, on_state: ReplicaStateFn) -> FakeHandle:
        if self.refuse is not None:
            raise PlacementError(self.refuse)
        self._port += 1
        h = FakeHandle(spec.replica_id, spec, on_state, self._port)
        self.handles.append(h)
        return h

    def running(self) -> list[FakeHandle]:
        return [h for h in self.handles if not h.stopped]

    async def close(self) -> None:
        return None
