"""Prompt-prefix hashing and a global, bounded index of which endpoint caches which prefix.

Hashing (:func:`checkpoint_hashes`): the gateway hands over the request's original bytes; the
prompt is the part from the ``"messages"`` (or ``"prompt"``) key on, hashed in place
through a memoryview (never decoded or re-encoded). A prompt is cut into blocks of
``block_bytes``, but only the prefixes ending at *checkpoints* get a hash: every block up
to ``DENSE_BLOCKS``, then ``CHECKPOINTS_PER_DOUBLING`` per doubling of the length (16, 20,
24, 28, 32, 40, 48, ... blocks). Checkpoint ``k`` covers ``CHECKPOINT_BLOCKS[k]`` blocks;
its hash is xxh3-64 of the bytes since checkpoint ``k - 1``, seeded with that checkpoint's
hash, so it identifies the whole prefix. A 64 KB prompt is 32 C calls over its bytes, once.
What this gives up: a match is known to checkpoint precision (at most a quarter of the
matched length is unaccounted for past 4 KB), which changes no routing decision that cache
locality could make, since the runtimes' own caches are only estimated here anyway.

Index (:class:`PrefixIndex`): one map from checkpoint hash to the endpoints believed to hold
that prefix (the SGLang/vllm-router "which workers hold this prefix" tree, flattened into a
hash map because chained hashes make every prefix one key), plus a per-endpoint LRU whose
size is counted in blocks and bounded per endpoint. The longest match over the whole fleet
is a binary search over the request's checkpoints in that map: no endpoint is visited.

Everything here is pure, synchronous and not thread-safe.
"""

from __future__ import annotations

import bisect
import collections
import functools
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import xxhash

__all__ = [
    "BLOCKS_AT",
    "CHECKPOINT_BLOCKS",
    "DEFAULT_BLOCK_BYTES",
    "DEFAULT_BLOCK_CHARS",
    "DEFAULT_MAX_BLOCKS",
    "PrefixIndex",
    "blocks_at",
    "checkpoint_hashes",
    "checkpoints_within",
    "prefix_block_hashes",
    "prompt_view",
]

DEFAULT_BLOCK_BYTES = 256
"""Bytes per block: about 64 tokens of JSON-encoded prompt, a few runtime KV blocks."""
DEFAULT_BLOCK_CHARS = DEFAULT_BLOCK_BYTES  # the name earlier callers use

DEFAULT_MAX_BLOCKS = 8192
"""Blocks remembered per endpoint when its runtime does not say its KV capacity (2 MB of prompt)."""

DENSE_BLOCKS = 16
CHECKPOINTS_PER_DOUBLING = 4


def _checkpoints(limit: int) -> tuple[int, ...]:
    out = list(range(1, DENSE_BLOCKS + 1))
    shift = CHECKPOINTS_PER_DOUBLING.bit_length() - 1
    while out[-1] < limit:  # from 2**j to 2**(j + 1): CHECKPOINTS_PER_DOUBLING equal steps
        out.append(out[-1] + (1 << (out[-1].bit_length() - 1 - shift)))
    return tuple(out)


CHECKPOINT_BLOCKS: tuple[int, ...] = _checkpoints(1 << 24)
"""Blocks covered by checkpoint ``k`` (strictly increasing; a constant table)."""

_xxh3 = xxhash.xxh3_64_intdigest


@functools.cache
def _spans(block_bytes: int) -> tuple[slice, ...]:
    """The bytes each checkpoint adds to the one before, as slices (a constant table: a
    prebuilt slice spares the loop building one per checkpoint)."""
    ends = [blocks * block_bytes for blocks in CHECKPOINT_BLOCKS]
    return tuple(slice(start, end) for start, end in zip([0, *ends[:-1]], ends, strict=True))


BLOCKS_AT: tuple[int, ...] = (0, *CHECKPOINT_BLOCKS)
"""``BLOCKS_AT[n]``: blocks covered by the first ``n`` checkpoints (``blocks_at`` as a table)."""


def blocks_at(checkpoints: int) -> int:
    """Blocks covered by the first ``checkpoints`` checkpoints (0 for none)."""
    return BLOCKS_AT[checkpoints] if checkpoints > 0 else 0


def checkpoints_within(blocks: int) -> int:
    """How many checkpoints lie within the first ``blocks`` blocks."""
    return bisect.bisect_right(CHECKPOINT_BLOCKS, blocks)


def prompt_view(body: bytes | memoryview) -> memoryview:
    """The prompt's bytes within a request body: from the ``"messages"`` key (chat) or the
    ``"prompt"`` key (completions) on, else the whole body. No copy. A memoryview is taken
    to be the prompt already.

    Whatever precedes the prompt (the model name, sampling parameters, in any order) does
    not split two requests with the same prompt; what follows it only changes the last block.
    """
    if isinstance(body, memoryview):
        return body
    view = memoryview(body)
    for key in (b'"messages"', b'"prompt"'):
        at = body.find(key)
        if at >= 0:
            return view[at:]
    return view


def checkpoint_hashes(view: memoryview | bytes, block_bytes: int = DEFAULT_BLOCK_BYTES) -> list[int]:
    """The checkpoint hashes of a prompt's full blocks, shortest prefix first (a trailing
    partial block is not hashed: runtimes only reuse full blocks either). Equal prompts give
    equal hashes in any process.

    All of them, at once: a routed request's whole prompt is taught to the index
    (:meth:`PrefixIndex.insert`), so every checkpoint is needed anyway, and a plain list is
    the cheapest thing for the lookups to index (a lazy sequence cost a Python call per
    ``len`` and per extension: 7 ``__len__`` calls a decision).

    Raises ValueError when ``block_bytes`` is not positive.
    """
    if block_bytes <= 0:
        raise ValueError(f"block_bytes must be positive, got {block_bytes}")
    if type(view) is not memoryview:
        view = memoryview(view)
    n = checkpoints_within(len(view) // block_bytes)
    hashes: list[int] = []
    append, xxh3 = hashes.append, _xxh3
    h = 0
    for span in _spans(block_bytes)[:n]:  # the loop is all of the cost: keep it bare
        h = xxh3(view[span], h)
        append(h)
    return hashes


def prefix_block_hashes(text: str | bytes, block_chars: int = DEFAULT_BLOCK_BYTES) -> tuple[int, ...]:
    """All checkpoint hashes of ``text`` (UTF-8 encoded if a str), as a tuple.

    Hash ``k`` identifies the whole prefix of ``CHECKPOINT_BLOCKS[k]`` blocks, so two prompts
    share hash ``k`` exactly when (up to collisions) they share that prefix.

    Raises:
        ValueError: ``block_chars`` is not positive.
    """
    return tuple(checkpoint_hashes(text.encode() if isinstance(text, str) else text, block_chars))


_NOBODY: tuple[str, ...] = ()


class PrefixIndex:
    """Which prompt prefixes each endpoint has probably cached, bounded in blocks per endpoint.

    It is an estimate: it learns from routing decisions (:meth:`insert`), forgets the least
    recently used prefixes once an endpoint holds more than its bound in blocks (the
    runtime's KV capacity where known, :meth:`set_capacity`), and is corrected from what the
    runtime reports (:meth:`truncate`). It does not see the runtime's own evictions.

    Invariant that licenses the fast lookups: along any request's checkpoints, the
    checkpoints an endpoint holds form a prefix (holding checkpoint ``k`` implies holding
    every ``j < k``). It holds because one insert touches the deepest checkpoint first and
    the shallowest last, so the LRU never evicts a checkpoint before its descendants, and
    because ``holders[h]`` gains and loses an endpoint exactly when that endpoint's LRU does.
    Consequences: the fleet-wide longest match is a binary search for the last checkpoint
    ``holders`` has (:meth:`longest`); one endpoint's match is a binary search
    (:meth:`match`), O(log checkpoints). Only :meth:`truncate` can break the invariant (it
    cuts the deeper part of one chain, which a longer chain on the same endpoint may
    extend), so a truncated endpoint is matched by a scan from the shallow end from then
    on (O(match length), still independent of the fleet), and ``longest`` may name it as a
    holder of a prefix it lost the middle of: the per-endpoint match then says so.

    Memory: at most ``capacity`` entries per endpoint (each entry covers >= 1 block), one
    LRU entry and one place in a holders list each.
    """

    __slots__ = ("_capacity", "_holders", "_holes", "_lru", "_used", "max_blocks")

    def __init__(self, max_blocks: int = DEFAULT_MAX_BLOCKS) -> None:
        """Raises ValueError when ``max_blocks`` is not positive."""
        if max_blocks <= 0:
            raise ValueError(f"max_blocks must be positive, got {max_blocks}")
        self.max_blocks = max_blocks
        self._holders: dict[int, list[str]] = {}  # a list: drawn from at random, smaller than a set
        self._lru: dict[str, OrderedDict[int, int]] = {}  # endpoint -> hash -> blocks it covers
        self._used: dict[str, int] = {}
        self._capacity: dict[str, int] = {}
        self._holes: set[str] = set()

    # -- reading --------------------------------------------------------------------------

    def longest(self, hashes: Sequence[int]) -> tuple[int, Sequence[str]]:
        """``(n, holders)``: the longest prefix (in checkpoints) any endpoint holds, and the
        endpoints holding all of it, each once (empty when ``n == 0``; do not modify it).
        O(log n) lookups, independent of the number of endpoints.

        By the class's invariant, "some endpoint holds checkpoint ``k``" holds for every ``k``
        below the answer and for none from it on, so the answer is a binary search, and a
        prompt held to its end anywhere (a repeated prompt, a shared prefix's own requests)
        costs one lookup. A truncated endpoint can hold a checkpoint past one nobody holds, so
        the search can stop past the first such checkpoint; it cannot when one of the holders
        it stops at was never truncated (that one holds every checkpoint before), and where all
        of them were, the checkpoints are walked from the first instead.
        """
        get = self._holders.get
        total = len(hashes)
        if not total:
            return 0, _NOBODY
        top = get(hashes[total - 1])
        if top is not None:
            lo = total
        else:
            lo, hi = 0, total - 1  # checkpoint hi is held by nobody, and lo - 1 (if lo) by ``top``
            while lo < hi:
                mid = (lo + hi) // 2
                found = get(hashes[mid])
                if found is None:
                    hi = mid
                else:
                    lo, top = mid + 1, found
            if top is None:
                return 0, _NOBODY
        holes = self._holes
        if holes and holes.issuperset(top):
            return self._walk(hashes)
        return lo, top

    def _walk(self, hashes: Sequence[int]) -> tuple[int, Sequence[str]]:
        """:meth:`longest` without the invariant (some endpoint was truncated): the checkpoints
        up to the first one nobody holds, looked up at C speed (a few past it cost less than a loop)."""
        # before the first None every entry is a holders list (never empty: an emptied one is deleted)
        found: list[Any] = list(map(self._holders.get, hashes))
        if None in found:
            n = found.index(None)
            return n, (found[n - 1] if n else _NOBODY)
        return len(found), found[-1]

    def matches(self, endpoint_ids: Sequence[str], hashes: Sequence[int], limit: int) -> list[int]:
        """:meth:`match` for each of ``endpoint_ids``, with ``limit`` = the depth :meth:`longest`
        returned for ``hashes`` (> 0): one call for the candidates of a decision."""
        deepest = hashes[limit - 1]
        lru_of, holes = self._lru, self._holes
        out = []
        for endpoint_id in endpoint_ids:
            lru = lru_of.get(endpoint_id)
            if lru is None or hashes[0] not in lru:
                out.append(0)
            elif deepest in lru and endpoint_id not in holes:
                out.append(limit)  # it holds the deepest, hence (the invariant) every one before
            else:
                out.append(self.match(endpoint_id, hashes, limit))
        return out

    def match(self, endpoint_id: str, hashes: Sequence[int], limit: int | None = None) -> int:
        """Checkpoints of ``hashes`` (at most ``limit``) held by ``endpoint_id``; read-only.

        Pass ``limit`` = the depth :meth:`longest` returned for the same hashes, to read no
        hash beyond it: a holder of all of it (it holds the deepest, hence, by the invariant,
        every one before) is then answered with one lookup, anyone else by a binary search.
        """
        lru = self._lru.get(endpoint_id)
        hi = len(hashes) if limit is None else min(limit, len(hashes))
        if not lru or hi == 0:
            return 0
        if endpoint_id in self._holes:
            n = 0
            while n < hi and hashes[n] in lru:
                n += 1
            return n
        if limit is not None and hashes[hi - 1] in lru:  # a holder of all that longest() found
            return hi
        if hashes[0] not in lru:
            return 0
        lo = 1  # hashes[lo - 1] is held; the answer is in [lo, hi]
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if hashes[mid - 1] in lru:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def capacity(self, endpoint_id: str) -> int:
        """The bound in blocks for ``endpoint_id``."""
        return self._capacity.get(endpoint_id, self.max_blocks)

    def size(self, endpoint_id: str) -> int:
        """Blocks currently remembered for ``endpoint_id``."""
        return self._used.get(endpoint_id, 0)

    def entries(self) -> int:
        """Prefixes remembered over all endpoints (the index's memory, in entries)."""
        return sum(len(lru) for lru in self._lru.values())

    def endpoints(self) -> Iterable[str]:
        """Endpoints with at least one remembered prefix."""
        return [e for e, lru in self._lru.items() if lru]

    # -- changing -------------------------------------------------------------------------

    def set_capacity(self, endpoint_id: str, blocks: int) -> None:
        """Bound ``endpoint_id`` to ``blocks`` blocks (e.g. its runtime's KV capacity); evicts
        at once if it holds more. Raises ValueError when ``blocks`` is not positive."""
        if blocks <= 0:
            raise ValueError(f"capacity must be positive, got {blocks}")
        self._capacity[endpoint_id] = blocks
        self._evict(endpoint_id, blocks)

    def insert(self, endpoint_id: str, hashes: Sequence[int], upto: int | None = None,
               held: int | None = None) -> None:
        """Record that ``endpoint_id`` now caches the prefix up to checkpoint ``upto``
        (default: all of ``hashes``), refreshing its recency; evict past the bound.

        ``held``: how many leading checkpoints of ``hashes`` the endpoint holds already, where
        the caller knows (the decision's :meth:`matches`); two lookups confirm it (the
        invariant), else, and without it, every checkpoint is looked up.
        A prefix longer than the endpoint's whole capacity is recorded as far as it fits.
        """
        cap = self._capacity.get(endpoint_id, self.max_blocks)
        n = len(hashes) if upto is None else min(upto, len(hashes))
        if n >= len(BLOCKS_AT) or BLOCKS_AT[n] > cap:  # a table lookup, not a bisect, for what fits
            n = checkpoints_within(cap)
        if n <= 0:
            return
        lru = self._lru.get(endpoint_id)
        if lru is None:
            lru = self._lru[endpoint_id] = OrderedDict()
        holders_of = self._holders
        move = lru.move_to_end
        added = 0
        if (held is not None and 0 <= held <= n and endpoint_id not in self._holes
                and (held == 0 or hashes[held - 1] in lru) and (held == n or hashes[held] not in lru)):
            d = held  # holding held - 1 implies holding every one before it; none from held on
        else:
            have = list(map(lru.__contains__, hashes[:n]))
            d = have.index(False) if False in have else n
            if d < n and True in have[d:]:  # not a prefix (a truncated endpoint): take them one by one
                d = 0
        for k in range(n - 1, d - 1, -1):  # deepest first: the shallow ones end up most recent
            h = hashes[k]
            if h in lru:
                move(h)
                continue
            span = CHECKPOINT_BLOCKS[k] - (CHECKPOINT_BLOCKS[k - 1] if k else 0)
            lru[h] = span
            added += span
            holders = holders_of.get(h)
            if holders is None:
                holders_of[h] = [endpoint_id]
            else:
                holders.append(endpoint_id)  # not yet there: it was not in this endpoint's LRU
        if d:  # the held part, deepest first too, at C speed (a loop of move_to_end is most of an insert)
            collections.deque(map(move, reversed(hashes[:d])), maxlen=0)
        if added:
            self._used[endpoint_id] = self._used.get(endpoint_id, 0) + added
            self._evict(endpoint_id, cap)

    def truncate(self, endpoint_id: str, hashes: Sequence[int], keep: int) -> None:
        """Forget checkpoints ``keep`` and deeper of ``hashes`` on ``endpoint_id``; refresh the
        first ``keep`` as cached. Used when the endpoint reported holding only that much."""
        keep = max(0, min(keep, len(hashes)))
        lru = self._lru.get(endpoint_id)
        if lru is not None:
            for h in hashes[keep:]:
                span = lru.pop(h, None)
                if span is not None:
                    self._drop(endpoint_id, h, span)
                    self._holes.add(endpoint_id)
        if keep:
            self.insert(endpoint_id, hashes, keep)

    def remove(self, endpoint_id: str) -> None:
        """Forget everything about ``endpoint_id`` (it left the pool or restarted)."""
        lru = self._lru.pop(endpoint_id, None)
        self._used.pop(endpoint_id, None)
        self._holes.discard(endpoint_id)
        if lru:
            holders_of = self._holders
            for h in lru:
                holders = holders_of.get(h)
                if holders is not None:
                    holders.remove(endpoint_id)
                    if not holders:
                        del holders_of[h]

    def _evict(self, endpoint_id: str, cap: int) -> None:
        used = self._used.get(endpoint_id, 0)
        if used <= cap:
            return
        lru = self._lru[endpoint_id]
        while used > cap and lru:
            h, span = lru.popitem(last=False)
            used -= span
            self._unhold(endpoint_id, h)
        self._used[endpoint_id] = used

    def _drop(self, endpoint_id: str, h: int, span: int) -> None:
        self._used[endpoint_id] -= span
        self._unhold(endpoint_id, h)

    def _unhold(self, endpoint_id: str, h: int) -> None:
        holders = self._holders.get(h)
        if holders is not None:
            holders.remove(endpoint_id)
            if not holders:
                del self._holders[h]
