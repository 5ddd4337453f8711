"""The access log: one JSON line per request, written off the event loop.

A request observer (``observability/observer.py``). On ``finished`` it builds the line
(one ``orjson.dumps``) and appends it to a deque; a writer thread wakes every
``flush_interval_s`` (or when the deque grows past ``flush_lines``), writes what is there
in one ``write`` and flushes. The event loop never touches the file.

Each line (docs/access-log.md has the full field list)::

    {"time": "2026-12-01T12:00:00.123Z", "ts": 1796126400.123456, "request_id": "...",
     "surface": "openai", "route": "chat", "tenant": null, "deployment": "smollm2",
     "endpoint": "smollm2-0", "runtime": "embedded", "status": 200, "error_code": null,
     "stream": true, "prompt_tokens": 412, "completion_tokens": 64, "cached_tokens": 256,
     "max_tokens": 64, "ttft_s": 0.081, "duration_s": 1.92, "queued_s": 0.0, "retries": 0,
     "prompt_bytes": 1730, "prefix": "9a3f01c2.77d0e1b4.05c2aa19.3b1e6f70.c0ffee01.0d15ea5e"}

``prefix`` is the prompt's fingerprint: the routing index's checkpoint hashes
(``routing/prefix.py``) of the prompt's bytes as the client sent them, 32 bits each, in
hex, dot-separated. Hash ``k`` covers the prompt's first ``CHECKPOINT_BLOCKS[k]`` blocks of
``PREFIX_BLOCK_BYTES`` bytes (1..16 blocks, then four checkpoints per doubling), and each
hash chains over the ones before it, so two requests whose prompts share their first ``n``
bytes share the fingerprint's first ``checkpoints_within(n // 256)`` hashes - the leading
part of the string - and nothing after. The fingerprint says which requests share a
prefix and how long it is, never what it says. Prompt text goes into the line only with
``log_prompts``.

Rotation: the writer checks, once per flush, whether the path still names the file it
has open (logrotate's default ``create`` mode renames it); if not, it reopens the path.
No signal is needed (``copytruncate`` works too: the file is opened for append).

A log that cannot keep up (a stalled disk) is bounded: past ``max_pending_lines`` new
lines are dropped and counted; the count is logged at the next write that succeeds.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO, Any

import orjson

from inferplane.observability.observer import (
    FinishedObserver,
    Outcome,
    RequestRecord,
)
from inferplane.routing.prefix import DEFAULT_BLOCK_BYTES, checkpoint_hashes, prompt_view

__all__ = ["PREFIX_BLOCK_BYTES", "AccessLog", "LineWriter", "prompt_fingerprint"]

log = logging.getLogger(__name__)

PREFIX_BLOCK_BYTES = DEFAULT_BLOCK_BYTES
"""Bytes per fingerprint block (the routing index's block size)."""


def prompt_fingerprint(body: bytes) -> tuple[int, str]:
    """``(prompt_bytes, fingerprint)`` of a request body (see the module docstring).

    One xxh3 pass over the prompt's bytes, in place; a body under one block gives ``""``.
    """
    view = prompt_view(body)
    hashes = checkpoint_hashes(view, PREFIX_BLOCK_BYTES)
    return len(view), ".".join(["%08x" % (h >> 32) for h in hashes])


class LineWriter:
    """Appends byte lines to a file (or stdout) from a thread of its own.

    ``write`` may be called from the event loop (a deque append, never blocking);
    ``close`` writes what is pending and joins the thread. Raises ``OSError`` from the
    constructor when the file cannot be opened (so a bad path fails at start).
    """

    def __init__(self, path: str, *, flush_interval_s: float = 0.2, flush_lines: int = 512,
                 max_pending_lines: int = 100_000) -> None:
        self.path = path
        self._stdout = path == "-"
        self._fh: IO[bytes] = sys.stdout.buffer if self._stdout else self._open()
        self._pending: deque[bytes] = deque()
        self._interval = flush_interval_s
        self._flush_lines = flush_lines
        self._max_pending = max_pending_lines
        self.dropped = 0
        self._reported_dropped = 0
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="inferplane-access-log", daemon=True)
        self._thread.start()

    def _open(self) -> IO[bytes]:
        p = Path(self.path)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p.open("ab")

    def write(self, line: bytes) -> None:
        """Queue one line (it must end with a newline). Never blocks."""
        pending = self._pending
        if len(pending) >= self._max_pending:
            self.dropped += 1
            return
        pending.append(line)
        if len(pending) == self._flush_lines:
            self._wake.set()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._flush()
        self._flush()

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        batch = []
        while pending:  # deque.popleft is thread-safe against the loop's append
            batch.append(pending.popleft())
        try:
            if not self._stdout:
                self._reopen_if_rotated()
            self._fh.write(b"".join(batch))
            self._fh.flush()
        except (OSError, ValueError) as exc:
            self.dropped += len(batch)
            log.error("access log %s: cannot write %d line(s): %s", self.path, len(batch), exc)
            return
        if self.dropped != self._reported_dropped:
            log.warning("access log %s: %d line(s) dropped so far (the log could not keep up)",
                        self.path, self.dropped)
            self._reported_dropped = self.dropped

    def _reopen_if_rotated(self) -> None:
        try:
            same = os.stat(self.path).st_ino == os.fstat(self._fh.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            old, self._fh = self._fh, self._open()
            old.close()

    def close(self) -> None:
        """Write everything pending and stop the thread (idempotent)."""
        if self._stop:
            return
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=10)
        if not self._stdout:
            self._fh.close()


class AccessLog(FinishedObserver):
    """A request observer writing one JSON line per finished request (module docstring).

    Cost on the event loop per request: the fingerprint (one hash pass over the prompt's
    bytes), one dict and one ``orjson.dumps``; with ``log_prompts``, one JSON parse of the
    body as well.
    """

    def __init__(self, writer: LineWriter, *, log_prompts: bool = False) -> None:
        self.writer = writer
        self.log_prompts = log_prompts
        self._iso_sec = -1
        self._iso_text = ""

    def finished(self, rec: RequestRecord, outcome: Outcome) -> None:
        self.writer.write(orjson.dumps(self.line(rec, outcome), option=orjson.OPT_APPEND_NEWLINE))

    def line(self, rec: RequestRecord, outcome: Outcome) -> dict[str, Any]:
        """The log line for one request, as a dict (what ``finished`` writes)."""
        usage = outcome.usage
        prompt_bytes, prefix = prompt_fingerprint(rec.body) if rec.body else (0, "")
        unix = rec.started_unix
        sec = int(unix)
        if sec != self._iso_sec:  # one strftime per second of traffic, not per request
            self._iso_sec, self._iso_text = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        line: dict[str, Any] = {
            "time": f"{self._iso_text}.{int((unix - sec) * 1000):03d}Z", "ts": unix,
            "request_id": rec.request_id, "surface": rec.surface.value, "route": rec.route.value,
            "tenant": rec.tenant, "deployment": rec.model, "endpoint": outcome.endpoint_id,
            "runtime": outcome.runtime, "status": outcome.status, "error_code": outcome.error_code,
            "stream": rec.stream, "prompt_tokens": None, "completion_tokens": None, "cached_tokens": None,
            "max_tokens": rec.max_tokens, "ttft_s": outcome.ttft_s, "duration_s": outcome.t_end - rec.t_start,
            "queued_s": outcome.queued_s, "retries": outcome.retries, "prompt_bytes": prompt_bytes,
            "prefix": prefix,
        }  # fmt: skip
        if usage is not None:
            line["prompt_tokens"] = usage.prompt_tokens
            line["completion_tokens"] = usage.completion_tokens
            line["cached_tokens"] = usage.cached_tokens
        if self.log_prompts and rec.body:
            line.update(_prompt_fields(rec.body))
        return line

    def close(self) -> None:
        self.writer.close()


def _prompt_fields(body: bytes) -> dict[str, Any]:
    """The prompt as the client sent it (``messages``, ``prompt``, ``system``, ``input``)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: data[k] for k in ("system", "messages", "prompt", "input") if k in data}
