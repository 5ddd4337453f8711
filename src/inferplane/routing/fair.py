"""Who leaves the held-request queue first: priority classes, fair across tenants inside one.

``FairOrdering`` is an ``Ordering`` for ``routing.held.HeldQueue`` (the one queue that holds
requests for a replica - at startup, scale-from-zero, and when every replica is full).

Between classes, strict priority: a held ``high`` request leaves before any ``normal``
one, a ``normal`` before any ``low`` (``Ticket.priority``: lower goes first). Inside a
class, start-time fair queuing over tenants: each ticket gets a virtual tag when it is
first held, ``tag = max(V, last tag of its tenant) + 1``, where ``V`` is the tag of the
ticket let go last in that class; the smallest tag leaves first (ties: arrival order).
So a tenant that holds 100 requests gets tags ``V+1 .. V+100`` while a tenant that
sends one now gets ``V+1``: the trickle interleaves with the burst instead of waiting
behind it, and a tenant that was idle gains no credit (its tag starts at ``V``). Every
request costs the same (one slot), so this is round-robin across the tenants with
requests held - with the one property round-robin lacks: a ticket that was let go, found
no free replica after all (a race with another waiter) and is held again keeps its
tag, so it returns to exactly its old place.

Pure bookkeeping (no clock, no I/O): table-tested in ``tests/unit/routing/test_fair.py``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from inferplane.routing.held import Ticket

__all__ = ["FairOrdering"]


class _Class:
    __slots__ = ("count", "heap", "last", "vtime")

    def __init__(self) -> None:
        self.count = 0
        """Tickets of this class held now (the heap may also hold removed ones)."""
        self.heap: list[tuple[float, int, Ticket]] = []
        self.last: dict[str | None, float] = {}
        """Last tag given to each tenant's tickets in this class."""
        self.vtime = 0.0


class FairOrdering:
    """Strict priority between classes; start-time fair queuing between tenants within one."""

    def __init__(self) -> None:
        self._classes: dict[int, _Class] = {}
        self._members: dict[int, Ticket] = {}
        """seq -> ticket, for every ticket held (the heaps drop removed ones lazily)."""

    def push(self, ticket: Ticket) -> None:
        c = self._classes.get(ticket.priority)
        if c is None:
            c = self._classes[ticket.priority] = _Class()
        if ticket.tag is None:
            tag = max(c.vtime, c.last.get(ticket.tenant, 0.0)) + 1.0
            ticket.tag = tag
            c.last[ticket.tenant] = tag
        self._members[ticket.seq] = ticket
        c.count += 1
        heapq.heappush(c.heap, (ticket.tag, ticket.seq, ticket))

    def pop(self) -> Ticket | None:
        for prio in sorted(self._classes):
            c = self._classes[prio]
            heap = c.heap
            while heap:
                tag, seq, t = heapq.heappop(heap)
                if self._members.get(seq) is t:
                    del self._members[seq]
                    c.count -= 1
                    c.vtime = max(c.vtime, tag)
                    if not c.count:
                        self._forget_idle(c)
                    return t
            self._forget_idle(c)
        return None

    def remove(self, ticket: Ticket) -> None:
        if self._members.get(ticket.seq) is ticket:
            del self._members[ticket.seq]
            c = self._classes[ticket.priority]
            c.count -= 1
            if not c.count:
                self._forget_idle(c)

    @staticmethod
    def _forget_idle(c: _Class) -> None:
        """A class with nothing held forgets its tenants (their tags are all below V now)."""
        c.heap.clear()
        c.last.clear()

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[Ticket]:
        """The held tickets in the order they would leave."""
        out = []
        for prio in sorted(self._classes):
            out += sorted((t for t in self._members.values() if t.priority == prio), key=lambda t: (t.tag, t.seq))
        return iter(out)
