"""The autoscaler: every ``interval_s`` reads each autoscaled deployment's signals, asks its
policy, and sets the desired count on its controller. Also reacts at once to a request
held for a deployment that runs no replica (scale from zero), without waiting for a tick.

The loop is one task owned by ``serve`` (``start`` / ``stop``); ``tick(now)`` is one
round, callable from tests with any clock.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from inferplane.autoscale.policy import Decision, ScalingPolicy, Signals
from inferplane.autoscale.signals import SignalReader
from inferplane.placement.controller import DeploymentController

__all__ = ["Autoscaler"]

log = logging.getLogger(__name__)


class Autoscaler:
    def __init__(self, controllers: Mapping[str, DeploymentController], reader: SignalReader, *,
                 clock: Callable[[], float] = time.monotonic, history_size: int = 50) -> None:
        self.controllers = controllers
        self.reader = reader
        self._clock = clock
        self._policies: dict[str, ScalingPolicy] = {}
        self.last: dict[str, tuple[Signals, Decision]] = {}
        self.last_change: dict[str, dict[str, Any]] = {}
        self.decisions: collections.Counter[tuple[str, str, str]] = collections.Counter()
        """(deployment, direction, reason) -> decisions that changed the count."""
        self.history: collections.deque[dict[str, Any]] = collections.deque(maxlen=history_size)
        """The last ``history_size`` changes of a desired count, oldest first (for the dashboard)."""
        self._task: asyncio.Task[None] | None = None
        if reader.held is not None:
            reader.held.on_depth(self._held_changed)

    def _policy(self, name: str) -> ScalingPolicy | None:
        ctl = self.controllers.get(name)
        cfg = ctl.deployment.autoscale if ctl is not None else None
        if cfg is None:
            self._policies.pop(name, None)
            return None
        p = self._policies.get(name)
        if p is None or p.config != cfg:  # new, or reloaded with other settings
            p = self._policies[name] = ScalingPolicy(cfg)
        return p

    def tick(self, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        for name in list(self.controllers):
            self.decide(name, now)

    def decide(self, name: str, now: float) -> Decision | None:
        policy = self._policy(name)
        ctl = self.controllers.get(name)
        if policy is None or ctl is None:
            return None
        signals = self.reader.read(name, now)
        decision = policy.decide(signals, ctl.desired)
        self.last[name] = (signals, decision)
        if decision.desired != ctl.desired:
            self.decisions[(name, decision.direction, decision.reason)] += 1
            change = {"time": time.time(), "from": ctl.desired, "to": decision.desired,
                      "direction": decision.direction, "reason": decision.reason}
            self.last_change[name] = change
            self.history.append({"deployment": name, **change})
            log.info("autoscaler: %s %d -> %d (%s)", name, ctl.desired, decision.desired, decision.reason)
            ctl.set_desired(decision.desired, f"autoscaler: {decision.reason}")
        return decision

    def _held_changed(self, deployment: str, depth: int) -> None:
        ctl = self.controllers.get(deployment)
        if depth > 0 and ctl is not None and ctl.desired == 0:
            self.decide(deployment, self._clock())

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, ctl in self.controllers.items():
            cfg = ctl.deployment.autoscale
            counts = ctl.counts()
            entry: dict[str, Any] = {
                "enabled": cfg is not None, "desired": ctl.desired, "ready": counts.ready,
                "starting": counts.starting, "draining": counts.draining,
                "config": cfg.model_dump() if cfg is not None else None,
                "last_change": self.last_change.get(name),
            }
            if name in self.last:
                signals, decision = self.last[name]
                entry["signals"] = {**asdict(signals), "load": signals.load}
                entry["decision"] = asdict(decision)
            out[name] = entry
        return out

    def start(self, interval_s: float = 1.0) -> None:
        self._task = asyncio.create_task(self._loop(interval_s), name="autoscaler")

    async def _loop(self, interval_s: float) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # one bad round must not end autoscaling
                log.exception("autoscaler round failed")
            await asyncio.sleep(self._interval(interval_s))

    def _interval(self, default: float) -> float:
        intervals = [c.deployment.autoscale.interval_s for c in self.controllers.values() if c.deployment.autoscale]
        return min(intervals, default=default)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
