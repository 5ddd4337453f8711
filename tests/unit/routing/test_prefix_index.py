"""Prefix checkpoint hashing and the bounded, fleet-wide prefix index."""

from __future__ import annotations

import itertools
from collections import OrderedDict

import pytest
import xxhash

from inferplane.routing.prefix import (
    CHECKPOINT_BLOCKS,
    PrefixIndex,
    blocks_at,
    checkpoint_hashes,
    checkpoints_within,
    prefix_block_hashes,
    prompt_view,
)


@pytest.mark.parametrize(
    ("text", "block_bytes", "checkpoints"),
    [
        ("", 4, 0),
        ("abc", 4, 0),
        ("abcd", 4, 1),
        ("abcdefg", 4, 1),
        ("abcdefgh", 4, 2),
        ("x" * 4096, 256, 16),  # every block up to 16 ...
        ("x" * 10_240, 256, 21),  # ... then 20, 24, 28, 32, 40 of the 40 blocks
        ("x" * 65_536, 256, 16 + 4 * 4),  # four per doubling: 32 for 256 blocks
        ("é" * 9, 4, 4),  # bytes, not characters: 18 bytes of UTF-8
    ],
)
def test_hashes_cover_full_blocks_at_checkpoints(text: str, block_bytes: int, checkpoints: int) -> None:
    assert len(prefix_block_hashes(text, block_bytes)) == checkpoints


@pytest.mark.parametrize(
    ("blocks", "checkpoints", "covered"),
    [(0, 0, 0), (1, 1, 1), (16, 16, 16), (19, 16, 16), (20, 17, 20), (255, 31, 224), (256, 32, 256)],
)
def test_checkpoint_table(blocks: int, checkpoints: int, covered: int) -> None:
    assert checkpoints_within(blocks) == checkpoints
    assert blocks_at(checkpoints) == covered
    steps = [b - a for a, b in itertools.pairwise(CHECKPOINT_BLOCKS)]
    assert all(s <= max(1, a // 4) for s, a in zip(steps, CHECKPOINT_BLOCKS, strict=False))


def test_checkpoint_hashes_chain_each_checkpoint_on_the_one_before() -> None:
    data = bytes(range(256)) * 256 + b"partial"  # 64 KB and a partial block, which is not hashed
    hashes = checkpoint_hashes(data, 256)
    assert len(hashes) == 32
    h, start, want = 0, 0, []
    for blocks in CHECKPOINT_BLOCKS[:32]:
        h = xxhash.xxh3_64_intdigest(data[start:blocks * 256], h)
        want.append(h)
        start = blocks * 256
    assert hashes == want
    assert checkpoint_hashes(memoryview(data), 256) == want
    index = PrefixIndex()
    index.insert("e1", prefix_block_hashes(data[:1024], 256))  # 4 blocks known anywhere
    depth, holders = index.longest(hashes)
    assert (depth, set(holders)) == (4, {"e1"})


@pytest.mark.parametrize(
    ("body", "prompt_starts"),
    [
        (b'{"model":"m","temperature":0.1,"messages":[{"role":"user"}]}', b'"messages":'),
        (b'{"temperature":0.9,"model":"other","messages":[{"role":"user"}]}', b'"messages":'),
        (b'{"model":"m","prompt":"hello"}', b'"prompt":'),
        (b'{"model":"m"}', b'{"model"'),
    ],
)
def test_prompt_view_skips_what_precedes_the_prompt(body: bytes, prompt_starts: bytes) -> None:
    view = prompt_view(body)
    assert bytes(view).startswith(prompt_starts)
    assert view.obj is body  # a view, not a copy


@pytest.mark.parametrize(
    ("a", "b", "shared"),
    [
        ("system prompt AAAA question 1", "system prompt AAAA answer 22", 4),
        ("aaaabbbbcccc", "aaaabbbbcccc", 3),
        ("aaaabbbbcccc", "aaaaXbbbcccc", 1),
        ("aaaabbbbcccc", "Xaaabbbbcccc", 0),
        ("aaaabbbbcccc", "aaaabbbb", 2),
    ],
)
def test_hashes_identify_prefixes(a: str, b: str, shared: int) -> None:
    ha, hb = prefix_block_hashes(a, 4), prefix_block_hashes(b, 4)
    common = 0
    for x, y in zip(ha, hb, strict=False):
        if x != y:
            break
        common += 1
    assert common == shared
    # chained: a later block never matches once an earlier one differs
    assert all(x != y for x, y in zip(ha[common:], hb[common:], strict=False))


def test_hashes_are_stable_values() -> None:
    # Stable across processes (no salted hash()): pin one value (xxh3-64 of b"abcd", seed 0).
    assert prefix_block_hashes("abcd", 4) == prefix_block_hashes(b"abcd", 4)
    assert prefix_block_hashes("abcd", 4)[0] == 0x6497A96F53A89890


@pytest.mark.parametrize("bad", [0, -1])
def test_hashes_reject_bad_block_size(bad: int) -> None:
    with pytest.raises(ValueError, match="block_bytes"):
        prefix_block_hashes("abcd", bad)


@pytest.mark.parametrize(
    ("stored", "query", "matched"),
    [
        ((1, 2, 3), (1, 2, 3, 4), 3),
        ((1, 2, 3), (1, 2), 2),
        ((1, 2, 3), (9, 2, 3), 0),
        ((1, 3), (1, 2, 3), 1),
        ((), (1, 2), 0),
    ],
)
def test_match_is_longest_present_prefix(
    stored: tuple[int, ...], query: tuple[int, ...], matched: int
) -> None:
    index = PrefixIndex(max_blocks=16)
    index.insert("e1", stored)
    assert index.match("e1", query) == matched
    assert index.match("other", query) == 0


@pytest.mark.parametrize(
    ("max_blocks", "inserts", "expected_size"),
    [
        (4, [(1, 2, 3)], 3),
        (4, [(1, 2, 3), (1, 2, 3, 4, 5)], 4),
        (4, [tuple(range(100))], 4),
        (10, [(i, i + 1000) for i in range(50)], 10),
    ],
)
def test_lru_bound_is_respected(
    max_blocks: int, inserts: list[tuple[int, ...]], expected_size: int
) -> None:
    index = PrefixIndex(max_blocks=max_blocks)
    for hashes in inserts:
        index.insert("e1", hashes)
        assert index.size("e1") <= max_blocks
    assert index.size("e1") == expected_size


def test_lru_evicts_least_recent_and_tails_first() -> None:
    index = PrefixIndex(max_blocks=4)
    index.insert("e1", (1, 2))  # conversation A
    index.insert("e1", (7, 8))  # conversation B
    index.insert("e1", (1, 2))  # A used again: B is now least recent
    index.insert("e1", (5,))  # evicts B's tail (8) before its head (7)
    assert index.match("e1", (1, 2)) == 2
    assert index.match("e1", (7, 8)) == 1
    index.insert("e1", (6,))
    assert index.match("e1", (7, 8)) == 0
    assert index.match("e1", (1, 2)) == 2


@pytest.mark.parametrize(
    ("keep", "after"),
    [(0, 0), (2, 2), (4, 4), (9, 4)],
)
def test_truncate_forgets_the_tail(keep: int, after: int) -> None:
    index = PrefixIndex(max_blocks=16)
    index.insert("e1", (1, 2, 3, 4))
    index.truncate("e1", (1, 2, 3, 4), keep)
    assert index.match("e1", (1, 2, 3, 4)) == after


def test_remove_forgets_endpoint() -> None:
    index = PrefixIndex(max_blocks=16)
    index.insert("e1", (1, 2))
    index.insert("e2", (1, 2))
    index.remove("e1")
    assert index.match("e1", (1, 2)) == 0
    assert index.match("e2", (1, 2)) == 2
    assert list(index.endpoints()) == ["e2"]


@pytest.mark.parametrize("keep", [0, 1, 3, 5])
def test_truncate_shortens_chains_sharing_the_cut_blocks(keep: int) -> None:
    index = PrefixIndex(max_blocks=64)
    a = prefix_block_hashes("a" * 24 + "bbbb", 4)  # 7 blocks
    b = prefix_block_hashes("a" * 24 + "cccc" * 4, 4)  # shares a's first 6 blocks
    index.insert("e1", b)
    index.insert("e1", a)
    index.truncate("e1", a, keep)
    assert index.match("e1", b) == keep
    assert index.match("e1", a) == keep


@pytest.mark.parametrize("prefix_chars", [0, 4, 40, 400])
def test_match_equals_a_reference_lru_with_linear_scan(prefix_chars: int) -> None:
    # reference: an LRU over checkpoints, each weighing the blocks it covers
    index = PrefixIndex(max_blocks=50)
    reference: OrderedDict[int, int] = OrderedDict()
    texts = [f"{'s' * prefix_chars}{i:03d}" + "x" * (8 * (i % 5)) for i in range(40)]
    for text in texts:
        hashes = prefix_block_hashes(text, 4)
        index.insert("e1", hashes[: checkpoints_within(50)])
        for k in reversed(range(min(len(hashes), checkpoints_within(50)))):
            reference[hashes[k]] = CHECKPOINT_BLOCKS[k] - (CHECKPOINT_BLOCKS[k - 1] if k else 0)
            reference.move_to_end(hashes[k])
        while sum(reference.values()) > 50:
            reference.popitem(last=False)
        assert index.size("e1") == sum(reference.values())
    for text in texts:
        hashes = prefix_block_hashes(text + "tail", 4)
        expected = 0
        for h in hashes:
            if h not in reference:
                break
            expected += 1
        assert index.match("e1", hashes) == expected


def _walk(index: PrefixIndex, hashes: tuple[int, ...]) -> tuple[int, set[str]]:
    """The longest prefix any endpoint holds, by looking every checkpoint up in turn."""
    held: set[str] = set()
    for n, h in enumerate(hashes):
        now = {e for e in index.endpoints() if h in index._lru[e]}
        if not now:
            return n, held
        held = now
    return len(hashes), held


@pytest.mark.parametrize("truncate_every", [0, 7])
def test_longest_equals_a_walk_over_every_checkpoint(truncate_every: int) -> None:
    # several endpoints, small bounds (evictions), prompts that share prefixes of many lengths
    import random

    rng = random.Random(5)
    index = PrefixIndex(max_blocks=120)
    texts = ["".join(rng.choice("ab") for _ in range(rng.randint(0, 12))) * rng.randint(1, 40) for _ in range(60)]
    for i in range(400):
        hashes = prefix_block_hashes(rng.choice(texts), 4)
        endpoint = f"e{rng.randrange(5)}"
        if truncate_every and i % truncate_every == 0:
            index.truncate(endpoint, hashes, rng.randrange(len(hashes) + 1))
        else:
            index.insert(endpoint, hashes)
        probe = prefix_block_hashes(rng.choice(texts) + rng.choice(["", "tail"]), 4)
        depth, holders = index.longest(probe)
        want_depth, want_holders = _walk(index, probe)
        assert (depth, set(holders)) == (want_depth, want_holders)


@pytest.mark.parametrize("hint", ["right", "too_high", "too_low", "none"])
def test_insert_with_a_held_count_ends_as_without_it(hint: str) -> None:
    shared = prefix_block_hashes("s" * 100 + "one" * 30, 4)
    again = prefix_block_hashes("s" * 100 + "two" * 30, 4)  # 25 blocks shared, then its own
    with_hint, without = PrefixIndex(max_blocks=60), PrefixIndex(max_blocks=60)
    for index in (with_hint, without):
        index.insert("e1", prefix_block_hashes("z" * 40, 4))
        index.insert("e1", shared)
    right = with_hint.match("e1", again)
    assert 0 < right < len(again)
    held = {"right": right, "too_high": right + 3, "too_low": right - 2, "none": None}[hint]
    with_hint.insert("e1", again, held=held)
    without.insert("e1", again)
    assert list(with_hint._lru["e1"].items()) == list(without._lru["e1"].items())
    assert with_hint.size("e1") == without.size("e1")


def test_longest_is_not_misled_by_a_truncated_endpoints_deeper_checkpoints() -> None:
    x = prefix_block_hashes("a" * 48 + "x" * 40, 4)  # 22 blocks: 17 checkpoints
    y = prefix_block_hashes("a" * 48 + "y" * 40, 4)  # shares x's first 12 checkpoints
    index = PrefixIndex()
    index.insert("A", x, upto=10)
    index.insert("B", x)
    index.truncate("B", y, 5)  # B loses x's checkpoints 5..11 (shared with y) but keeps 12..16
    assert index.match("B", x) == 5
    depth, holders = index.longest(x)
    assert (depth, list(holders)) == (10, ["A"])  # not (17, ["B"]): nobody holds checkpoint 10
