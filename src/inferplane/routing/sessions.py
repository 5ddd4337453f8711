"""Which replica each recently seen session was served by: what a drain would move.

A bounded LRU of session keys (``x-session-id`` or the body's ``user``) -> the endpoint
that last served it, with a count per endpoint. The deployment controller reads
``pinned(endpoint_id)`` when it picks a replica to drain, so that one without sessions
goes before one that users are talking to. O(1) per served request; not thread-safe
(the gateway's event loop only).
"""

from __future__ import annotations

import collections

__all__ = ["RecentSessions"]


class RecentSessions:
    def __init__(self, max_keys: int = 8192) -> None:
        self.max_keys = max_keys
        self._owner: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._count: collections.Counter[str] = collections.Counter()

    def seen(self, session_key: str, endpoint_id: str) -> None:
        """``endpoint_id`` served a request of ``session_key``."""
        old = self._owner.pop(session_key, None)
        if old is not None:
            self._count[old] -= 1
        self._owner[session_key] = endpoint_id
        self._count[endpoint_id] += 1
        if len(self._owner) > self.max_keys:
            _, gone = self._owner.popitem(last=False)
            self._count[gone] -= 1

    def pinned(self, endpoint_id: str) -> int:
        """Recently seen sessions whose last request went to ``endpoint_id``."""
        return self._count.get(endpoint_id, 0)

    def forget(self, endpoint_id: str) -> None:
        """The endpoint is gone: its sessions will be served elsewhere."""
        for key in [k for k, e in self._owner.items() if e == endpoint_id]:
            del self._owner[key]
        self._count.pop(endpoint_id, None)
