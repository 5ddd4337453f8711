"""The held-request queue: requests that wait in the gateway for a replica to serve them.

A request is held when its deployment has no replica that can take it - during startup,
after a crash, while a scaled-to-zero deployment starts one - and is let go when one
can (``release``), when its wait runs out (``HeldTimeout``), or when its client goes
away (the waiting task is cancelled and leaves the queue at once). The depth per
deployment is bounded (``QueueFull``, answered at once) and is a scaling signal.

Who is let go first is an ``Ordering`` (FIFO here); admission by priority and per-tenant
fairness is another ordering over the same queue, not a second queue. ``release(n)`` lets
go the first ``n`` in that order; woken requests that then find nothing to serve them
(a race with another waiter) wait again at their old place.

Runs on the gateway's event loop; not thread-safe.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from inferplane.errors import InferplaneError

__all__ = ["FifoOrdering", "HeldQueue", "HeldTimeout", "NoReplica", "Ordering", "QueueFull", "Ticket"]


class NoReplica(InferplaneError):
    """The request cannot be served now; ``retry_after_s`` is a hint for the client."""

    code = "model_not_ready"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))


class HeldTimeout(NoReplica):
    """Held for the whole queue timeout and no replica became able to serve it."""


class QueueFull(NoReplica):
    """Too many requests are held for this deployment already."""

    code = "queue_full"


@dataclass(slots=True, eq=False)
class Ticket:
    """One held request. ``tenant`` and ``priority`` are for orderings that use them."""

    deployment: str
    seq: int
    held_since: float
    tenant: str | None = None
    priority: int = 0
    woken: asyncio.Future[None] | None = field(default=None, repr=False)
    counted: bool = False


class Ordering(Protocol):
    """Which held request goes first. Pure bookkeeping; no I/O, no clock."""

    def push(self, ticket: Ticket) -> None: ...

    def pop(self) -> Ticket | None:
        """The next ticket to let go (removed), or None when empty."""
        ...

    def remove(self, ticket: Ticket) -> None:
        """Forget a ticket that left on its own (timeout, client gone); no-op if absent."""
        ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Ticket]: ...


class FifoOrdering:
    """First come, first served; a re-queued ticket keeps its place (ordered by ``seq``)."""

    def __init__(self) -> None:
        self._items: collections.OrderedDict[int, Ticket] = collections.OrderedDict()

    def push(self, ticket: Ticket) -> None:
        self._items[ticket.seq] = ticket
        if next(reversed(self._items)) != ticket.seq:  # re-queued behind younger ones: restore order
            self._items = collections.OrderedDict(sorted(self._items.items()))

    def pop(self) -> Ticket | None:
        if not self._items:
            return None
        return self._items.popitem(last=False)[1]

    def remove(self, ticket: Ticket) -> None:
        self._items.pop(ticket.seq, None)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Ticket]:
        return iter(list(self._items.values()))


DepthListener = Callable[[str, int], None]


class HeldQueue:
    """Held requests per deployment, each deployment with its own ordering."""

    def __init__(self, *, timeout_s: float, max_depth: int,
                 ordering: Callable[[], Ordering] = FifoOrdering,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout_s = timeout_s
        self.max_depth = max_depth
        self._ordering = ordering
        self._clock = clock
        self._queues: dict[str, Ordering] = {}
        self._seq = itertools.count()
        self._listeners: list[DepthListener] = []
        self._closed: dict[str, str] = {}
        self._all_closed: str | None = None
        self.held_total: collections.Counter[str] = collections.Counter()
        self.timeouts_total: collections.Counter[str] = collections.Counter()
        self.rejected_total: collections.Counter[str] = collections.Counter()

    def on_depth(self, fn: DepthListener) -> None:
        """Call ``fn(deployment, depth)`` whenever a deployment's queue grows or shrinks."""
        self._listeners.append(fn)

    def depth(self, deployment: str) -> int:
        q = self._queues.get(deployment)
        return len(q) if q is not None else 0

    def depths(self) -> dict[str, int]:
        return {d: len(q) for d, q in self._queues.items()}

    def oldest_wait_s(self, deployment: str) -> float:
        q = self._queues.get(deployment)
        first = next(iter(q), None) if q is not None else None
        return self._clock() - first.held_since if first is not None else 0.0

    def ticket(self, deployment: str, *, tenant: str | None = None, priority: int = 0) -> Ticket:
        return Ticket(deployment, next(self._seq), self._clock(), tenant, priority)

    async def wait(self, ticket: Ticket, *, timeout_s: float | None = None) -> None:
        """Hold until released. Raises QueueFull at once, HeldTimeout when the wait runs out.

        ``timeout_s`` is what is left of the ticket's wait (default: the whole queue
        timeout from when the ticket was made). Cancellation removes the ticket.
        """
        closed = self._all_closed or self._closed.get(ticket.deployment)
        if closed is not None:
            raise NoReplica(closed, retry_after_s=1.0)
        q = self._queues.get(ticket.deployment)
        if q is None:
            q = self._queues[ticket.deployment] = self._ordering()
        if len(q) >= self.max_depth:
            self.rejected_total[ticket.deployment] += 1
            raise QueueFull(f"{len(q)} requests are already waiting for a replica of {ticket.deployment!r}; "
                            "try again shortly", retry_after_s=max(1.0, self.timeout_s / 10))
        left = self.timeout_s - (self._clock() - ticket.held_since) if timeout_s is None else timeout_s
        if left <= 0:
            self._timed_out(ticket)
        ticket.woken = asyncio.get_running_loop().create_future()
        q.push(ticket)
        if not ticket.counted:
            ticket.counted = True
            self.held_total[ticket.deployment] += 1
        self._changed(ticket.deployment)
        try:
            await asyncio.wait_for(asyncio.shield(ticket.woken), left)
        except TimeoutError:
            self._timed_out(ticket)
        finally:
            q.remove(ticket)
            self._changed(ticket.deployment)

    def _timed_out(self, ticket: Ticket) -> None:
        self.timeouts_total[ticket.deployment] += 1
        raise HeldTimeout(
            f"no replica of {ticket.deployment!r} became ready within {self.timeout_s:g} s; try again shortly",
            retry_after_s=min(30.0, max(1.0, self.timeout_s / 4)),
        )

    def release(self, deployment: str, n: int | None = None) -> int:
        """Let go the first ``n`` held requests of ``deployment`` (all when None); returns how many."""
        q = self._queues.get(deployment)
        if q is None:
            return 0
        woken = 0
        while n is None or woken < n:
            t = q.pop()
            if t is None:
                break
            if t.woken is not None and not t.woken.done():
                t.woken.set_result(None)
                woken += 1
        if woken:
            self._changed(deployment)
        return woken

    def close(self, deployment: str | None, message: str) -> None:
        """Answer every request held for ``deployment`` (all, when None) with ``NoReplica(message)``
        and hold no more for it, until ``reopen``."""
        if deployment is None:
            self._all_closed = message
        else:
            self._closed[deployment] = message
        for name, q in self._queues.items():
            if deployment is not None and name != deployment:
                continue
            while (t := q.pop()) is not None:
                if t.woken is not None and not t.woken.done():
                    t.woken.set_exception(NoReplica(message, retry_after_s=1.0))
            self._changed(name)

    def reopen(self, deployment: str) -> None:
        self._closed.pop(deployment, None)

    def _changed(self, deployment: str) -> None:
        depth = self.depth(deployment)
        for fn in self._listeners:
            fn(deployment, depth)
