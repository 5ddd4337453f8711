"""Prompt-prefix hashing and an approximate per-endpoint prefix-cache index.

The gateway renders a request's messages to one string and calls
:func:`prefix_block_hashes` once per request; the resulting tuple goes into
``RouteRequest.prefix_hashes``. The prefix policy keeps a :class:`PrefixIndex`
that guesses which of those blocks each endpoint has in its KV cache.

Everything here is pure, synchronous and not thread-safe.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence

__all__ = ["DEFAULT_BLOCK_CHARS", "DEFAULT_MAX_BLOCKS", "PrefixIndex", "prefix_block_hashes"]

DEFAULT_BLOCK_CHARS = 256
"""Characters per block: about 64 tokens, a few runtime KV blocks."""

DEFAULT_MAX_BLOCKS = 8192
"""Blocks remembered per endpoint (about 2M characters, 0.5M tokens of prompt)."""


def prefix_block_hashes(text: str, block_chars: int = DEFAULT_BLOCK_CHARS) -> tuple[int, ...]:
    """Chained 64-bit hashes of the full ``block_chars``-character blocks of ``text``.

    Hash ``i`` identifies the whole prefix ``text[: (i + 1) * block_chars]``, so two prompts
    share hash ``i`` exactly when (up to collisions) they share that prefix. A trailing
    partial block is not hashed (runtimes only reuse full blocks either).

    The hash is stable across processes and machines (CRC-32 and Adler-32, each chained
    over the prefix, side by side); it is not cryptographic. About 2 µs per KB of prompt.

    Raises:
        ValueError: ``block_chars`` is not positive.
    """
    if block_chars <= 0:
        raise ValueError(f"block_chars must be positive, got {block_chars}")
    end = len(text) - len(text) % block_chars
    crc32 = zlib.crc32
    adler32 = zlib.adler32
    c = 0
    a = 1
    out: list[int] = []
    append = out.append
    for start in range(0, end, block_chars):
        block = text[start : start + block_chars].encode()
        c = crc32(block, c)
        a = adler32(block, a)
        append((c << 32) | a)
    return tuple(out)


class PrefixIndex:
    """Which prefix blocks each endpoint has probably cached, with an LRU bound per endpoint.

    It is an estimate: it learns from routing decisions (:meth:`insert`), forgets the least
    recently used blocks past ``max_blocks`` per endpoint, and is corrected from what the
    runtime reports (:meth:`truncate`). It does not know the runtime's own evictions.

    Within one insert the tail blocks are touched before the head, so under pressure an
    endpoint loses the ends of prompts before their shared beginnings (as runtimes do).
    Consequence used by :meth:`match`: along any chain of prefix hashes (as made by
    :func:`prefix_block_hashes`) the blocks an endpoint holds form a prefix, because a
    block is never touched later than the blocks before it, so LRU never evicts a block
    before its successors. Only :meth:`truncate` can break that (it cuts blocks that other
    chains share), so a truncated endpoint is matched by a linear scan from then on.
    """

    __slots__ = ("_blocks", "_holes", "max_blocks")

    def __init__(self, max_blocks: int = DEFAULT_MAX_BLOCKS) -> None:
        """Raises ValueError when ``max_blocks`` is not positive."""
        if max_blocks <= 0:
            raise ValueError(f"max_blocks must be positive, got {max_blocks}")
        self.max_blocks = max_blocks
        self._blocks: dict[str, OrderedDict[int, None]] = {}
        self._holes: set[str] = set()

    def match(self, endpoint_id: str, hashes: Sequence[int]) -> int:
        """Length of the longest prefix of ``hashes`` present on ``endpoint_id``.

        Read-only: it does not refresh recency (only routing does). O(log n) lookups while
        the endpoint's blocks are prefix-closed (see the class docstring); a linear scan
        once :meth:`truncate` may have left holes in other chains.
        """
        blocks = self._blocks.get(endpoint_id)
        if not blocks or not hashes or hashes[0] not in blocks:
            return 0
        if endpoint_id in self._holes:
            n = 0
            for h in hashes:
                if h not in blocks:
                    break
                n += 1
            return n
        lo, hi = 1, len(hashes)  # hashes[lo - 1] is present; the answer is in [lo, hi]
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if hashes[mid - 1] in blocks:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def insert(self, endpoint_id: str, hashes: Sequence[int]) -> None:
        """Record that ``endpoint_id`` now caches every block of ``hashes``; evict past the bound."""
        if not hashes:
            return
        blocks = self._blocks.get(endpoint_id)
        if blocks is None:
            blocks = self._blocks[endpoint_id] = OrderedDict()
        for h in reversed(hashes):
            blocks[h] = None
            blocks.move_to_end(h)
        excess = len(blocks) - self.max_blocks
        for _ in range(excess):
            blocks.popitem(last=False)

    def truncate(self, endpoint_id: str, hashes: Sequence[int], keep: int) -> None:
        """Forget ``hashes[keep:]`` on ``endpoint_id``; refresh ``hashes[:keep]`` as cached.

        Used when the endpoint reported it held only the first ``keep`` blocks.
        """
        keep = max(0, min(keep, len(hashes)))
        blocks = self._blocks.get(endpoint_id)
        if blocks is None:
            if keep:
                self.insert(endpoint_id, hashes[:keep])
            return
        for h in hashes[keep:]:
            if h in blocks:
                del blocks[h]
                self._holes.add(endpoint_id)
        if keep:
            self.insert(endpoint_id, hashes[:keep])

    def remove(self, endpoint_id: str) -> None:
        """Forget everything about ``endpoint_id`` (it left the pool or restarted)."""
        self._blocks.pop(endpoint_id, None)
        self._holes.discard(endpoint_id)

    def size(self, endpoint_id: str) -> int:
        """Blocks currently remembered for ``endpoint_id``."""
        blocks = self._blocks.get(endpoint_id)
        return len(blocks) if blocks else 0

    def endpoints(self) -> Iterable[str]:
        """Endpoints with at least one remembered block."""
        return [e for e, b in self._blocks.items() if b]
