"""FairOrdering: strict priority between classes, fair across tenants within one (tables)."""

from __future__ import annotations

import pytest

from inferplane.routing.fair import FairOrdering
from inferplane.routing.held import Ticket


def _tickets(spec: str) -> list[Ticket]:
    """``"a0 a0 b0 c2"`` -> tickets of tenant a (priority 0) twice, b, then c at priority 2, in arrival order."""
    return [Ticket("m", i, float(i), tenant=s[:-1], priority=int(s[-1])) for i, s in enumerate(spec.split())]


def _drain(o: FairOrdering) -> str:
    out = []
    while (t := o.pop()) is not None:
        out.append(f"{t.tenant}{t.seq}")
    return " ".join(out)


@pytest.mark.parametrize(("arrivals", "released"), [
    # one tenant: arrival order
    ("a1 a1 a1", "a0 a1 a2"),
    # a burst of a, then b's one request: b goes second, not fourth
    ("a1 a1 a1 a1 b1", "a0 b4 a1 a2 a3"),
    # three tenants, bursts of different sizes: round-robin while each has requests
    ("a1 a1 a1 b1 b1 c1", "a0 b3 c5 a1 b4 a2"),
    # strict priority: high (0) before normal (1) before low (2), whatever the arrival order
    ("a2 a2 b1 c0 b1", "c3 b2 b4 a0 a1"),
    # fairness holds inside each class separately
    ("a1 a1 a1 b1 x2 x2 y2", "a0 b3 a1 a2 x4 y6 x5"),
])
def test_release_order(arrivals: str, released: str) -> None:
    o = FairOrdering()
    for t in _tickets(arrivals):
        o.push(t)
    assert len(o) == len(arrivals.split())
    assert " ".join(f"{t.tenant}{t.seq}" for t in o) == released  # iteration shows the same order
    assert _drain(o) == released
    assert len(o) == 0


def test_a_tenant_that_was_idle_gains_no_credit() -> None:
    o = FairOrdering()
    ts = _tickets("a1 a1 a1 a1 a1 a1")
    for t in ts[:4]:
        o.push(t)
    assert o.pop() is ts[0] and o.pop() is ts[1]
    # b arrives now, after a's first two went: it is next, but a's earlier tickets stay ahead of b's later ones
    b1, b2 = Ticket("m", 10, 10.0, tenant="b", priority=1), Ticket("m", 11, 11.0, tenant="b", priority=1)
    o.push(b1)
    o.push(b2)
    assert _drain(o) == "a2 b10 a3 b11"


def test_a_requeued_ticket_returns_to_its_old_place() -> None:
    o = FairOrdering()
    ts = _tickets("a1 b1 a1 b1")
    for t in ts:
        o.push(t)
    first = o.pop()
    assert first is ts[0]
    o.push(first)  # let go, found every replica full after all: held again
    assert _drain(o) == "a0 b1 a2 b3"


def test_removed_tickets_are_skipped_and_counted_out() -> None:
    o = FairOrdering()
    ts = _tickets("a1 a1 b1 c0")
    for t in ts:
        o.push(t)
    o.remove(ts[3])  # client went away
    o.remove(ts[0])
    o.remove(ts[0])  # twice: no-op
    assert len(o) == 2
    assert _drain(o) == "b2 a1"
    o.remove(ts[1])  # already gone: no-op
    assert len(o) == 0 and o.pop() is None
