"""A Responder that re-encodes the OpenAI-shaped answers of the request path into another API's shape.

The gateway's request path (validation, routing, the attempt loop, its own 4xx/5xx) speaks
OpenAI to the :class:`~inferplane.gateway.http1.Responder` it is given. A surface hands it a
``TranslatingResponder`` instead, which turns each write into the client's API:

- ``send`` (a whole answer): a 2xx body goes through ``encoder.body``, any other status
  through ``errors`` (the gateway's own rejections included), Content-Type replaced;
- ``start`` / ``write`` / ``end`` (a stream): every chunk goes through the encoder's stream
  translator (``encoder.stream()``), under its own Content-Type.

Before a surface knows what it will ask (auth, unknown path), ``encoder`` is None: only errors
are translated. An answer the encoder cannot translate (``TranslationError``) becomes a 502 in
the client's shape; a stream chunk it cannot translate ends the stream with the client's error
event, and what the runtime sends after is dropped. Contract: the wrapped request path writes one
answer, as to a Responder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from inferplane.gateway.http1 import Responder
from inferplane.protocol.errors import TranslationError, error_body

__all__ = ["Encoder", "StreamEncoder", "TranslatingResponder"]

_UNREADABLE = (TranslationError, ValueError, TypeError, AttributeError, KeyError)
"""What translating a runtime's answer of an unexpected shape raises (orjson's errors are ValueErrors)."""


class StreamEncoder(Protocol):
    def feed(self, chunk: bytes) -> bytes:
        """The client's bytes for an OpenAI SSE chunk (b"" if nothing completed yet)."""
        ...

    def error(self, message: str) -> bytes:
        """A final error event in the client's stream shape."""
        ...

    @property
    def finished(self) -> bool: ...


class Encoder(Protocol):
    """How one request's successful answer is re-encoded (built once the request is parsed)."""

    stream_content_type: str

    def body(self, body: bytes) -> bytes:
        """A whole 2xx OpenAI answer in the client's shape. May raise TranslationError."""
        ...

    def stream(self) -> StreamEncoder:
        """A translator for one OpenAI SSE stream."""
        ...


class TranslatingResponder:
    """Wraps ``inner``; see the module docstring.

    ``errors(status, openai_body, request_id) -> body`` writes an error in the client's shape.
    """

    __slots__ = ("_errors", "_extra", "_stream", "encoder", "inner")

    def __init__(self, inner: Responder, errors: Callable[[int, bytes, str | None], bytes],
                 extra_headers: Callable[[list[tuple[str, str]]], list[tuple[str, str]]] | None = None) -> None:
        self.inner = inner
        self._errors = errors
        self._extra = extra_headers
        self.encoder: Encoder | None = None
        self._stream: StreamEncoder | None = None

    @property
    def started(self) -> bool:
        return self.inner.started

    @property
    def status(self) -> int:
        return self.inner.status

    @property
    def keep_alive(self) -> bool:
        return self.inner.keep_alive

    @keep_alive.setter
    def keep_alive(self, value: bool) -> None:
        self.inner.keep_alive = value

    def _headers(self, headers: list[tuple[str, str]], content_type: str) -> list[tuple[str, str]]:
        hs = [(k, v) for k, v in headers if k.lower() != "content-type"]
        hs.append(("Content-Type", content_type))
        return self._extra(hs) if self._extra is not None else hs

    def send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        if status < 300 and self.encoder is not None:
            try:
                body = self.encoder.body(body)
            except _UNREADABLE as exc:
                status, body = 502, self._errors(502, error_body(
                    f"the runtime's answer cannot be expressed in this API: {exc}", "upstream_error"), _rid(headers))
        elif status >= 400:
            body = self._errors(status, body, _rid(headers))
        self.inner.send(status, body, self._headers(headers, "application/json"))

    def send_native(self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> None:
        """A body already in the client's shape (a surface's own routes)."""
        self.inner.send(status, body, self._headers(headers or [], "application/json"))

    def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        if self.encoder is None:
            raise RuntimeError("a stream started before the surface said how to encode it")
        self._stream = self.encoder.stream()
        self.inner.start(status, self._headers(headers, self.encoder.stream_content_type))

    async def write(self, data: bytes) -> None:
        if self._stream is None:
            await self.inner.write(data)
            return
        if self._stream.finished:
            return
        try:
            out = self._stream.feed(data)
        except _UNREADABLE as exc:
            out = self._stream.error(f"the runtime sent a stream chunk this API cannot carry: {exc}")
        if out:
            await self.inner.write(out)

    def end(self) -> None:
        self.inner.end()



def _rid(headers: list[tuple[str, str]]) -> str | None:
    return next((v for k, v in headers if k.lower() == "x-request-id"), None)
