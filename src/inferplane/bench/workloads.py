"""Workloads: what to send. Each builder returns a ``Workload`` of ready-to-send requests.

Builders are deterministic given their seed, except for ``nonce``: a per-run string put at
the start of synthetic and shared-prefix prompts so that a prefix cache warmed by an earlier
run cannot inflate this one (pass the same nonce to reproduce a run byte for byte).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from inferplane.bench.sharegpt import Conversation, dataset_file_sha256, iter_conversations
from inferplane.bench.tokens import estimate_tokens

__all__ = [
    "BenchRequest",
    "Session",
    "Workload",
    "WorkloadError",
    "multi_turn",
    "shared_prefix",
    "sharegpt",
    "synthetic",
    "trace",
]

Message = tuple[str, str]
"""(role, content)."""

_WORD_TEXT = (
    "the of and to in is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there one all we their can has been if more when will "
    "would who so no time out up about into than them only some could new these two may first "
    "then do any like other such our even most made after also did many before must through "
    "back years where much your way well down should because each just those people how too "
    "little state good very make world still own see men work long get here between both life"
)
_WORDS = tuple(_WORD_TEXT.split())


class WorkloadError(ValueError):
    """The workload cannot be built as asked (bad file, too few usable entries, ...)."""


@dataclass(frozen=True, slots=True)
class BenchRequest:
    """One request of the plan (the completions API sends the joined message contents)."""

    messages: tuple[Message, ...]
    max_tokens: int
    at_s: float | None = None
    """Trace replay: offset from the start of the run (before the speed factor)."""
    input_tokens_estimate: int = 0


@dataclass(frozen=True, slots=True)
class Session:
    """A multi-turn conversation: each turn's request carries the history with the actual replies."""

    user_turns: tuple[str, ...]
    max_tokens: tuple[int, ...]
    system: str | None = None


@dataclass(frozen=True, slots=True)
class Workload:
    """A named set of requests (or sessions) with the facts needed for provenance."""

    name: str
    requests: tuple[BenchRequest, ...] = ()
    sessions: tuple[Session, ...] = ()
    dataset_sha256: str | None = None
    params: dict[str, object] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Number of requests the workload sends (all turns of all sessions)."""
        return len(self.requests) + sum(len(s.user_turns) for s in self.sessions)


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(_WORDS, k=max(n, 0)))


def _length(rng: random.Random, mean: int, range_ratio: float) -> int:
    lo = max(1, int(mean * (1 - range_ratio)))
    hi = max(lo, int(mean * (1 + range_ratio)))
    return rng.randint(lo, hi)


def synthetic(
    n: int,
    *,
    input_len: int,
    output_len: int,
    range_ratio: float = 0.0,
    seed: int = 0,
    nonce: str = "",
) -> Workload:
    """Prompts of about ``input_len`` tokens (one common English word each), unique per request and run."""
    rng = random.Random(seed)
    reqs = []
    for i in range(n):
        head = f"[{nonce}:{i}] "
        length = _length(rng, input_len, range_ratio)
        text = head + _words(rng, length - estimate_tokens(head))
        reqs.append(
            BenchRequest(
                (("user", text),),
                _length(rng, output_len, range_ratio),
                input_tokens_estimate=length,
            )
        )
    params: dict[str, object] = {
        "input_len": input_len,
        "output_len": output_len,
        "range_ratio": range_ratio,
        "nonce": nonce,
    }
    return Workload("synthetic", tuple(reqs), params=params)


def shared_prefix(
    n: int,
    *,
    groups: int,
    system_len: int,
    question_len: int,
    output_len: int,
    seed: int = 0,
    nonce: str = "",
) -> Workload:
    """``groups`` system prompts of ``system_len`` tokens, each shared by ~n/groups questions (round-robin)."""
    if groups < 1:
        raise WorkloadError("shared-prefix needs at least one group")
    rng = random.Random(seed)
    systems = [f"[{nonce}:group{g}] " + _words(rng, system_len) for g in range(groups)]
    reqs = []
    for i in range(n):
        system = systems[i % groups]
        question = f"Question {i}: " + _words(rng, question_len)
        est = estimate_tokens(system) + estimate_tokens(question)
        reqs.append(
            BenchRequest(
                (("system", system), ("user", question)), output_len, input_tokens_estimate=est
            )
        )
    params: dict[str, object] = {
        "groups": groups,
        "system_len": system_len,
        "question_len": question_len,
        "output_len": output_len,
        "nonce": nonce,
    }
    return Workload("shared-prefix", tuple(reqs), params=params)


def _usable(conv: Conversation, max_input: int, max_total: int) -> tuple[int, int] | None:
    isl, osl = estimate_tokens(conv.turns[0][1]), estimate_tokens(conv.turns[1][1])
    if isl < 4 or osl < 4 or isl > max_input or isl + osl > max_total:
        return None
    return isl, osl


def sharegpt(
    n: int,
    *,
    seed: int = 0,
    max_tokens: int | None = None,
    max_input: int = 1024,
    max_total: int = 2048,
    path: Path | None = None,
) -> Workload:
    """First turns of ShareGPT V3, shuffled with ``seed``; max_tokens = the dataset reply's length.

    Like vLLM's sampler it drops conversations whose prompt or reply is under 4 tokens, whose
    prompt is over ``max_input`` or whose prompt + reply is over ``max_total`` (client estimate).
    ``max_tokens`` caps every request's output.
    """
    convs = list(iter_conversations(path))
    random.Random(seed).shuffle(convs)
    reqs: list[BenchRequest] = []
    for conv in convs:
        lens = _usable(conv, max_input, max_total)
        if lens is None:
            continue
        out = min(lens[1], max_tokens) if max_tokens else lens[1]
        reqs.append(BenchRequest((("user", conv.turns[0][1]),), out, input_tokens_estimate=lens[0]))
        if len(reqs) == n:
            break
    if len(reqs) < n:
        raise WorkloadError(f"ShareGPT has only {len(reqs)} usable conversations, {n} requested")
    params: dict[str, object] = {
        "max_tokens_cap": max_tokens,
        "max_input": max_input,
        "max_total": max_total,
    }
    return Workload(
        "sharegpt", tuple(reqs), dataset_sha256=dataset_file_sha256(path), params=params
    )


def multi_turn(
    n_sessions: int,
    *,
    seed: int = 0,
    max_turns: int = 4,
    max_tokens: int | None = None,
    path: Path | None = None,
) -> Workload:
    """Real ShareGPT conversations with >= 2 user turns; each turn's prompt includes the history."""
    convs = list(iter_conversations(path))
    random.Random(seed).shuffle(convs)
    sessions: list[Session] = []
    for conv in convs:
        users = [t for r, t in conv.turns if r == "user"][:max_turns]
        replies = [estimate_tokens(t) for r, t in conv.turns if r == "assistant"][: len(users)]
        if (
            len(users) < 2
            or len(replies) < len(users)
            or any(estimate_tokens(u) > 1024 for u in users)
        ):
            continue
        caps = tuple(max(4, min(r, max_tokens) if max_tokens else r) for r in replies)
        sessions.append(Session(tuple(users), caps))
        if len(sessions) == n_sessions:
            break
    if len(sessions) < n_sessions:
        raise WorkloadError(
            f"ShareGPT has only {len(sessions)} multi-turn conversations, {n_sessions} requested"
        )
    params: dict[str, object] = {"max_turns": max_turns, "max_tokens_cap": max_tokens}
    return Workload(
        "multi-turn",
        sessions=tuple(sessions),
        dataset_sha256=dataset_file_sha256(path),
        params=params,
    )


def trace(
    path: Path, *, speed: float = 1.0, limit: int | None = None, default_max_tokens: int = 128
) -> Workload:
    """Replay a JSONL trace: ``{"timestamp": s, "prompt" | "messages": ..., "max_tokens": n}`` per line.

    ``timestamp`` (seconds; or ``timestamp_ms``) is relative or absolute: offsets are taken
    from the first line and divided by ``speed``. Raises ``WorkloadError`` on a bad line.
    """
    if speed <= 0:
        raise WorkloadError("trace speed factor must be > 0")
    rows: list[tuple[float, BenchRequest]] = []
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(_trace_row(orjson.loads(line), default_max_tokens))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise WorkloadError(f"{path}:{lineno}: bad trace line ({exc})") from exc
            if limit is not None and len(rows) == limit:
                break
    if not rows:
        raise WorkloadError(f"{path}: empty trace")
    t0 = min(t for t, _ in rows)
    reqs = [
        BenchRequest(r.messages, r.max_tokens, (t - t0) / speed, r.input_tokens_estimate)
        for t, r in sorted(rows, key=lambda x: x[0])
    ]
    return Workload("trace", tuple(reqs), params={"file": str(path), "speed": speed})


def _trace_row(obj: dict[str, object], default_max_tokens: int) -> tuple[float, BenchRequest]:
    if "timestamp_ms" in obj:
        t = float(obj["timestamp_ms"]) / 1e3  # type: ignore[arg-type]
    else:
        t = float(obj.get("timestamp", 0.0))  # type: ignore[arg-type]
    max_tokens = int(obj.get("max_tokens", default_max_tokens))  # type: ignore[call-overload]
    if "messages" in obj:
        msgs = obj["messages"]
        if not isinstance(msgs, list):
            raise ValueError("messages must be a list")
        messages = tuple((str(m["role"]), str(m["content"])) for m in msgs)
        est = sum(estimate_tokens(c) for _, c in messages)
        return t, BenchRequest(messages, max_tokens, input_tokens_estimate=est)
    prompt = str(obj["prompt"])
    return t, BenchRequest(
        (("user", prompt),), max_tokens, input_tokens_estimate=estimate_tokens(prompt)
    )
