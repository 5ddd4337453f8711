"""The scaling policy: how many replicas a deployment should run, from a history of signals.

Pure: no I/O, no clock; time comes in with each ``Signals``. Not thread-safe.

Per decision (every ``interval_s``):

1. Load = requests in flight at the gateway + requests held for a replica; where the
   runtimes report more running + waiting than that (other clients), theirs.
2. ``need`` = ceil(load / target_in_flight_per_replica). Pressure adds one replica over
   the current count when the runtimes say they are full (waiting queue with KV-cache
   above ``kv_cache_high``) or TTFT p95 is above ``ttft_slo_s`` - but only while no
   replica is starting (a cold start's TTFT is not a reason to start more).
3. Up: ``need`` above the current count for ``scale_up_delay_s`` (0: at once) -> jump
   straight to the smallest need seen in that window (several replicas at once).
4. Down: the count drops only when the *largest* need over the last
   ``scale_down_delay_s`` is below it, and the load would fit the smaller count below 70 %
   of target (hysteresis: a load that flaps around a boundary never crosses the lower
   line, so it cannot flap replicas); then one replica at a time, at most one step per
   ``down_step_s``.
5. Zero: with ``min_replicas: 0`` and no load at all for ``scale_to_zero_after_s`` (and no
   replica still starting), the count goes to 0; from 0, any held request brings ``need``
   (at least 1) at once.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

from inferplane.config.scaling import AutoscaleConfig

__all__ = ["DOWN_HEADROOM", "Decision", "ScalingPolicy", "Signals"]

DOWN_HEADROOM = 0.7
"""Scale down only if the load fits the smaller count at this fraction of target."""


@dataclass(frozen=True, slots=True)
class Signals:
    """One reading of a deployment's load."""

    now: float
    """Seconds on the caller's clock."""
    ready: int
    starting: int
    in_flight: int
    """Requests the gateway has in flight on the deployment's replicas."""
    held: int = 0
    """Requests waiting in the gateway for a replica."""
    runtime_running: int | None = None
    runtime_waiting: int | None = None
    """Summed over replicas from their scraped metrics; None where not exported."""
    kv_cache_usage: float | None = None
    """Highest scraped KV-cache usage 0..1 among ready replicas."""
    ttft_p95_s: float | None = None
    """Over the last few seconds; None without enough streamed requests."""

    @property
    def load(self) -> int:
        gateway = self.in_flight + self.held
        runtime = (self.runtime_running or 0) + (self.runtime_waiting or 0) + self.held
        return max(gateway, runtime)


@dataclass(frozen=True, slots=True)
class Decision:
    desired: int
    direction: str
    """"up", "down" or "none"."""
    reason: str
    need: int


class ScalingPolicy:
    """The decision procedure of the module docstring, with its history."""

    def __init__(self, config: AutoscaleConfig) -> None:
        self.config = config
        self._needs: collections.deque[tuple[float, int, int]] = collections.deque()
        """(time, need, need at the down line) for the longest window."""
        self._last_load_at: float | None = None
        self._last_down_at = -math.inf

    @property
    def down_step_s(self) -> float:
        return max(self.config.interval_s, self.config.scale_down_delay_s / 6)

    def _remember(self, now: float, need: int, need_down: int) -> None:
        self._needs.append((now, need, need_down))
        horizon = now - max(self.config.scale_up_delay_s, self.config.scale_down_delay_s)
        while len(self._needs) > 1 and self._needs[1][0] <= horizon:  # keep the one in force at the horizon
            self._needs.popleft()

    def _window(self, now: float, span_s: float) -> tuple[list[tuple[float, int, int]], bool]:
        """The readings in force during the last ``span_s`` (the one in force at its start
        included), and whether the history reaches back that far."""
        start = now - span_s
        inside = [x for x in self._needs if x[0] > start]
        before = [x for x in self._needs if x[0] <= start]
        return (before[-1:] + inside), bool(before)

    def decide(self, s: Signals, current: int) -> Decision:
        """The count to run now, given the count asked for so far (``current``)."""
        c = self.config
        load = s.load
        if self._last_load_at is None or load > 0:
            self._last_load_at = s.now
        need = math.ceil(load / c.target_in_flight_per_replica)
        need_down = math.ceil(load / (c.target_in_flight_per_replica * DOWN_HEADROOM))
        reason = "load"
        pressure = self._pressure(s)
        if pressure is not None and need <= current:
            need, need_down, reason = current + 1, current + 1, pressure
        floor = c.min_replicas if c.min_replicas > 0 else (0 if current == 0 and load == 0 else 1)
        need = max(floor, min(c.max_replicas, need))
        need_down = max(floor, min(c.max_replicas, need_down))
        self._remember(s.now, need, need_down)

        if current == 0 and load > 0:
            return Decision(need, "up", "held requests", need)
        if need > current:
            up = min(n for _, n, _ in self._window(s.now, c.scale_up_delay_s)[0])
            if up > current:
                return Decision(up, "up", reason, need)
            return Decision(current, "none", "waiting out scale_up_delay_s", need)
        if (c.min_replicas == 0 and current > 0 and load == 0 and not s.starting
                and s.now - self._last_load_at >= c.scale_to_zero_after_s):
            return Decision(0, "down", "idle", need)
        if current - 1 >= max(c.min_replicas, 1):
            window, covered = self._window(s.now, c.scale_down_delay_s)
            highest = max(n for _, _, n in window)
            if covered and highest < current and s.now - self._last_down_at >= self.down_step_s:
                self._last_down_at = s.now
                return Decision(current - 1, "down", "load below target", need)
        return Decision(current, "none", "steady", need)

    def _pressure(self, s: Signals) -> str | None:
        c = self.config
        if s.starting or s.ready == 0:
            return None
        if c.ttft_slo_s is not None and s.ttft_p95_s is not None and s.ttft_p95_s > c.ttft_slo_s:
            return "ttft above slo"
        if s.runtime_waiting and s.kv_cache_usage is not None and s.kv_cache_usage >= c.kv_cache_high:
            return "kv cache full"
        return None
