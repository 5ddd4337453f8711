"""Per-endpoint circuit breaker: pure state machine, driven with explicit clock readings.

    closed --(failure_threshold consecutive failures)--> open
    open   --(open_s elapsed; next allow())-----------> half_open (one trial request)
    half_open --success--> closed;  --failure--> open (for open_s again)

A success anywhere resets the failure count. Not thread-safe (event-loop use only).
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["Breaker", "BreakerState"]


class BreakerState(IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class Breaker:
    __slots__ = ("_failures", "_opened_at", "_trial_out", "failure_threshold", "open_s", "state")

    def __init__(self, *, failure_threshold: int, open_s: float) -> None:
        self.failure_threshold = failure_threshold
        self.open_s = open_s
        self.state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_out = False

    def allow(self, now: float) -> bool:
        """May a request go to this endpoint now? In half-open, only one trial at a time."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            if now - self._opened_at < self.open_s:
                return False
            self.state = BreakerState.HALF_OPEN
            self._trial_out = False
        if self._trial_out:
            return False
        self._trial_out = True
        return True

    def would_allow(self, now: float) -> bool:
        """Like ``allow`` but changes nothing (for filtering candidates)."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            return now - self._opened_at >= self.open_s
        return not self._trial_out

    def reopens_in(self, now: float) -> float:
        """Seconds until this breaker lets a request through again (0 when it does now)."""
        if self.state is BreakerState.OPEN:
            return max(0.0, self.open_s - (now - self._opened_at))
        return 0.0

    def record_success(self) -> None:
        self._failures = 0
        self._trial_out = False
        self.state = BreakerState.CLOSED

    def record_failure(self, now: float) -> None:
        self._failures += 1
        self._trial_out = False
        if self.state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            self.state = BreakerState.OPEN
            self._opened_at = now
