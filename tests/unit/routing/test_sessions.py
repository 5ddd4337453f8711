from __future__ import annotations

from inferplane.routing.sessions import RecentSessions


def test_sessions_count_where_they_were_last_served_and_age_out() -> None:
    s = RecentSessions(max_keys=3)
    s.seen("a", "e1")
    s.seen("b", "e1")
    s.seen("a", "e2")  # moved
    assert (s.pinned("e1"), s.pinned("e2")) == (1, 1)
    s.seen("c", "e2")
    s.seen("d", "e2")  # "b" is the oldest: it ages out
    assert (s.pinned("e1"), s.pinned("e2")) == (0, 3)
    s.forget("e2")
    assert s.pinned("e2") == 0
