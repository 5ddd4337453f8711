"""Replaying a gateway access log (``observability/access_log.py``) as a bench workload.

``inferplane bench --workload trace:ACCESS_LOG`` (and ``choose``) rebuild from each line:

- the arrival time: ``ts`` relative to the first line, divided by the speed factor;
- the output length: ``max_tokens`` = the completion tokens the runtime reported (the
  request's own ``max_tokens``, then the default, when it did not say);
- the prompt: synthetic words (about one token each) totalling the recorded
  ``prompt_tokens`` (or ``prompt_bytes`` x the log's median tokens per byte when the
  request has no usage) less the target's chat-template tokens (``template_tokens``, which
  bench measures with its preflight request), with the recorded prefix sharing.

Prefix sharing comes from the fingerprints. Hash ``k`` of a fingerprint covers the prompt's
first ``checkpoint_blocks(k + 1)`` blocks of 256 bytes, and equal leading hashes mean an
equal leading prefix. The fingerprints form a trie; each trie node gets its own synthetic
text, as many tokens as its bytes at the tokens-per-byte of the first request through it,
and a request's prompt is the texts along its path plus a tail of its own for the rest of
its length. So requests that shared ``n`` checkpoints share exactly ``n`` node texts and
nothing else: the replay has the log's groups, at checkpoint precision.

With ``log_prompts`` on, the log has the prompts themselves; the replay then sends them
as they were (``messages`` or ``prompt``) and the fingerprints are not needed.

Lines are skipped when they name no deployment (the gateway rejected the body before
knowing the model): nothing of them reached a runtime. ``Workload.params`` says how many.

This module imports nothing outside ``bench`` (the checkpoint table is restated here; a
test checks it against ``routing/prefix.py``).
"""

from __future__ import annotations

import random
import statistics
from pathlib import Path
from typing import Any

import orjson

from inferplane.bench.tokens import estimate_tokens
from inferplane.bench.workloads import _WORDS, BenchRequest, Message, Workload, WorkloadError, trace

__all__ = ["BLOCK_BYTES", "access_log", "checkpoint_blocks", "is_access_log_line", "trace_file"]

BLOCK_BYTES = 256
"""Bytes per fingerprint block (the gateway's ``PREFIX_BLOCK_BYTES``)."""

_DENSE = 16
_PER_DOUBLING_SHIFT = 2  # four checkpoints per doubling


def checkpoint_blocks(k: int) -> int:
    """Blocks covered by the first ``k`` checkpoints: 1..16, then 4 steps per doubling."""
    if k <= _DENSE:
        return max(k, 0)
    blocks = _DENSE
    for _ in range(k - _DENSE):
        blocks += 1 << (blocks.bit_length() - 1 - _PER_DOUBLING_SHIFT)
    return blocks


def is_access_log_line(obj: object) -> bool:
    """Whether a parsed JSONL line is an inferplane access-log line (vs a plain trace line)."""
    return isinstance(obj, dict) and "request_id" in obj and "prefix" in obj and "ts" in obj


class _Node:
    __slots__ = ("children", "text", "tokens")

    def __init__(self, text: str, tokens: int) -> None:
        self.text = text
        self.tokens = tokens
        self.children: dict[str, _Node] = {}


def access_log(path: Path, *, speed: float = 1.0, limit: int | None = None, default_max_tokens: int = 128,
               seed: int = 0, nonce: str = "", template_tokens: int = 0) -> Workload:
    """The workload replaying an access log (module docstring). Raises ``WorkloadError``.

    ``template_tokens``: what the target adds around each prompt (its chat template; bench
    measures it with its preflight request): taken off each recorded ``prompt_tokens`` so the
    replayed prompt, template included, is as long as the recorded one.
    """
    if speed <= 0:
        raise WorkloadError("trace speed factor must be > 0")
    lines = _read(path, limit)
    usable = [ln for ln in lines if isinstance(ln.get("deployment"), str)]
    if not usable:
        raise WorkloadError(f"{path}: no replayable lines (none names a deployment)")
    ratios = [ln["prompt_tokens"] / ln["prompt_bytes"] for ln in usable
              if _int(ln.get("prompt_tokens")) and _int(ln.get("prompt_bytes"))]
    default_ratio = statistics.median(ratios) if ratios else 0.25  # ~4 bytes of JSON per token
    rng = random.Random(seed)
    # the nonce as three common words (~3 tokens, ~2e6 values): a cache warmed by an earlier run
    # misses, and short prompts stay about as short as they were
    root_text = " ".join(random.Random(nonce).choices(_WORDS, k=3)) if nonce else ""
    root = _Node(root_text, estimate_tokens(root_text))
    usable.sort(key=lambda ln: float(ln["ts"]))
    t0 = float(usable[0]["ts"])
    reqs: list[BenchRequest] = []
    groups: set[str] = set()
    for ln in usable:
        at = (float(ln["ts"]) - t0) / speed
        out = _int(ln.get("completion_tokens")) or _int(ln.get("max_tokens")) or default_max_tokens
        messages = _logged_prompt(ln)
        if messages is not None:
            est = _int(ln.get("prompt_tokens")) or sum(len(c.split()) for _, c in messages)
            reqs.append(BenchRequest(messages, out, at, est))
            continue
        prompt_bytes = _int(ln.get("prompt_bytes")) or 0
        recorded = _int(ln.get("prompt_tokens")) or max(1, round(prompt_bytes * default_ratio))
        tokens = max(1, recorded - template_tokens)  # the prompt's own tokens
        ratio = tokens / prompt_bytes if prompt_bytes else default_ratio
        hashes = [h for h in str(ln.get("prefix") or "").split(".") if h]
        if len(hashes) > 1:
            groups.add(hashes[0])
        node, parts, used = root, [root.text] if root.text else [], root.tokens
        for k, h in enumerate(hashes):
            child = node.children.get(h)
            if child is None:
                seg_bytes = (checkpoint_blocks(k + 1) - checkpoint_blocks(k)) * BLOCK_BYTES
                n = max(1, round(seg_bytes * ratio))
                child = node.children[h] = _Node(" ".join(rng.choices(_WORDS, k=n)), n)
            node = child
            parts.append(child.text)
            used += child.tokens
        parts.append(" ".join(rng.choices(_WORDS, k=max(1, tokens - used))))  # this request's own rest
        reqs.append(BenchRequest((("user", " ".join(parts)),), out, at, max(tokens, used) + template_tokens))
    params: dict[str, object] = {
        "file": str(path), "format": "access-log", "speed": speed, "lines": len(lines),
        "skipped_no_deployment": len(lines) - len(usable), "prefix_groups": len(groups), "nonce": nonce,
        "template_tokens": template_tokens,
    }  # fmt: skip
    return Workload("trace", tuple(reqs), params=params)


def trace_file(path: Path, *, speed: float = 1.0, limit: int | None = None, default_max_tokens: int = 128,
               seed: int = 0, nonce: str = "", template_tokens: int = 0) -> Workload:
    """``trace:FILE``: an access log when its first line is one, else a plain JSONL trace
    (``workloads.trace``). Raises ``WorkloadError``."""
    try:
        with path.open("rb") as fh:
            first = next((raw for raw in fh if raw.strip()), b"")
    except OSError as exc:
        raise WorkloadError(f"cannot read {path}: {exc}") from exc
    try:
        sniffed = is_access_log_line(orjson.loads(first)) if first else False
    except orjson.JSONDecodeError:
        sniffed = False
    if sniffed:
        return access_log(path, speed=speed, limit=limit, default_max_tokens=default_max_tokens, seed=seed,
                          nonce=nonce, template_tokens=template_tokens)
    return trace(path, speed=speed, limit=limit, default_max_tokens=default_max_tokens)


def _read(path: Path, limit: int | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise WorkloadError(f"cannot read {path}: {exc}") from exc
    with fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise WorkloadError(f"{path}:{lineno}: not JSON ({exc})") from exc
            if not is_access_log_line(obj):
                raise WorkloadError(f"{path}:{lineno}: not an access-log line (needs ts, request_id, prefix)")
            try:
                float(obj["ts"])
            except (TypeError, ValueError) as exc:
                raise WorkloadError(f"{path}:{lineno}: ts is not a number") from exc
            out.append(obj)
            if limit is not None and len(out) == limit:
                break
    if not out:
        raise WorkloadError(f"{path}: empty access log")
    return out


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _logged_prompt(ln: dict[str, Any]) -> tuple[Message, ...] | None:
    """The prompt itself, when the log has it (``log_prompts: true``)."""
    msgs = ln.get("messages")
    if isinstance(msgs, list):
        out: list[Message] = []
        for m in msgs:
            if isinstance(m, dict) and isinstance(m.get("content"), str):
                out.append((str(m.get("role", "user")), m["content"]))
        if ln.get("system") and isinstance(ln["system"], str):
            out.insert(0, ("system", ln["system"]))
        return tuple(out) if out else None
    prompt = ln.get("prompt")
    if isinstance(prompt, str):
        return (("user", prompt),)
    return None
