"""The loop every OpenAI-SSE-to-another-API stream translator shares.

An OpenAI chat (or completions) stream arrives as SSE bytes split anywhere; a translator
turns each complete event into its API's stream (Anthropic's events, Ollama's NDJSON).
:class:`TranslatingStream` owns what does not depend on the target API:

1. decoding SSE across chunk boundaries (one ``SSEDecoder`` per stream);
2. skipping events that are not JSON (OpenAI streams carry none a client could use);
3. ``data: [DONE]`` -> the subclass's ``_finale`` (its closing events), after which the
   stream is finished and further input is ignored;
4. a chunk the target API cannot carry (``_chunk`` raising ``NotTranslatable`` or a
   malformed-shape error) -> the subclass's ``error`` event, which also finishes the stream.

A subclass implements ``_chunk(obj)`` (one OpenAI chunk -> its bytes; sets ``_done`` when
the chunk ends the stream, e.g. an OpenAI error event), ``_finale()`` and ``error(message)``
(both set ``_done``). Pure (no I/O), one instance per stream, not thread-safe.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import orjson

from inferplane.protocol.errors import NotTranslatable
from inferplane.protocol.sse import DONE, SSEDecoder

__all__ = ["UNTRANSLATABLE", "TranslatingStream"]

UNTRANSLATABLE = (NotTranslatable, TypeError, AttributeError, KeyError, ValueError)
"""What translating a runtime's answer of an unexpected shape raises (caught, never a crash)."""


class TranslatingStream(ABC):
    """OpenAI SSE in, another API's stream out. See the module docstring for the contract."""

    __slots__ = ("_dec", "_done")

    def __init__(self) -> None:
        self._dec = SSEDecoder()
        self._done = False

    @abstractmethod
    def _chunk(self, obj: dict[str, Any]) -> bytes:
        """The target API's bytes for one OpenAI stream chunk (b"" while it buffers)."""

    @abstractmethod
    def _finale(self) -> bytes:
        """The closing bytes at ``data: [DONE]``; sets ``_done``."""

    @abstractmethod
    def error(self, message: str) -> bytes:
        """The bytes that end the stream with an error the target API's client raises; sets ``_done``."""

    def feed(self, chunk: bytes) -> bytes:
        """The target API's bytes for the OpenAI events ``chunk`` completed (b"" if none)."""
        if self._done:
            return b""
        payloads = self._dec.feed(chunk)
        if not payloads:
            return b""
        out = []
        for payload in payloads:
            if payload == DONE:
                out.append(self._finale())
                break
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue  # not an event a client could use; OpenAI streams carry none
            try:
                out.append(self._chunk(obj) if isinstance(obj, dict) else b"")
            except UNTRANSLATABLE as exc:
                out.append(self.error(f"the runtime sent a stream chunk this API cannot carry: {exc}"))
            if self._done:
                break
        return out[0] if len(out) == 1 else b"".join(out)

    @property
    def finished(self) -> bool:
        """True once the closing bytes or an error went out."""
        return self._done
