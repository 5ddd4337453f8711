"""One record per request: the raw timestamps and token counts that every metric derives from.

All times are ``time.monotonic_ns()`` values (CLOCK_MONOTONIC, comparable across the
client's worker processes on one host). Definitions (see ``docs/bench.md``):

- ``t_sched_ns``: when the load plan wanted the request sent.
- ``t_send_ns``: just before the HTTP request was issued.
- ``t_first_ns``: first chunk with non-empty content (text, reasoning or tool-call delta);
  role-only, empty and usage-only chunks do not count.
- ``t_first_output_ns``: first chunk with non-reasoning content (text or tool call).
- ``chunk_times_ns``: arrival time of every content chunk (several SSE events read in one
  socket read share a time).
- ``t_last_ns``: last content chunk. ``t_close_ns``: response fully read (or failure).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Literal

__all__ = ["OslSource", "RequestRecord", "TokenSource"]

OslSource = Literal["usage", "estimate", "none"]
TokenSource = Literal["usage", "estimate", "none"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """Outcome of one request. Immutable; built once by the client when the response ends."""

    index: int
    ok: bool
    stream: bool
    t_sched_ns: int
    t_send_ns: int
    t_close_ns: int
    t_first_ns: int | None = None
    t_first_output_ns: int | None = None
    t_last_ns: int | None = None
    chunk_times_ns: tuple[int, ...] = ()
    osl: int | None = None
    """Output tokens: ``usage.completion_tokens`` when reported, else the client estimate."""
    osl_source: OslSource = "none"
    osl_client: int = 0
    """Client estimate of the output tokens (always computed, to count disagreements)."""
    isl: int | None = None
    isl_source: TokenSource = "none"
    isl_client: int = 0
    cached_tokens: int | None = None
    """``usage.prompt_tokens_details.cached_tokens`` when the server reports it."""
    reasoning_chunks: int = 0
    output_chars: int = 0
    http_status: int | None = None
    error_class: str | None = None
    error_message: str | None = None
    session: int | None = None
    turn: int | None = None
    worker: int = 0

    def to_dict(self, t0_ns: int = 0) -> dict[str, object]:
        """JSON-ready dict; times become ns relative to ``t0_ns``."""
        out = asdict(self)
        for key in (
            "t_sched_ns",
            "t_send_ns",
            "t_close_ns",
            "t_first_ns",
            "t_first_output_ns",
            "t_last_ns",
        ):
            value = out[key]
            if value is not None:
                out[key] = value - t0_ns
        out["chunk_times_ns"] = [t - t0_ns for t in self.chunk_times_ns]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, object], t0_ns: int = 0) -> RequestRecord:
        """Inverse of :meth:`to_dict`."""
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        for key in (
            "t_sched_ns",
            "t_send_ns",
            "t_close_ns",
            "t_first_ns",
            "t_first_output_ns",
            "t_last_ns",
        ):
            value = kwargs.get(key)
            if isinstance(value, int):
                kwargs[key] = value + t0_ns
        chunks = kwargs.get("chunk_times_ns", ())
        if not isinstance(chunks, (list, tuple)):
            raise ValueError("chunk_times_ns must be a list of ints")
        kwargs["chunk_times_ns"] = tuple(int(t) + t0_ns for t in chunks)
        return cls(**kwargs)  # type: ignore[arg-type]
