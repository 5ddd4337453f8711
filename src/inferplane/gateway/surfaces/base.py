"""The surface contract: one client-facing API (OpenAI, Anthropic, Ollama) on the gateway.

A surface is the only part of the request path that knows its API's wire format. It:

1. declares its routes (``routes()``: path, method, :class:`Route`); the gateway mounts them
   without any change to its core (``Gateway(surfaces=...)``);
2. names the headers that carry its API key (``key_headers``: ``authorization`` holds
   ``Bearer <key>``, any other header the bare key, e.g. Anthropic's ``x-api-key``);
3. parses and validates a request into the one canonical :class:`InferenceRequest`
   (OpenAI-shaped, because that is what runtimes speak), raising :class:`Rejection` for a
   request it refuses (``parse``);
4. encodes the canonical answer back (``encoder``): None when the client speaks OpenAI too,
   and then the runtime's bytes pass through untouched (the zero-copy path); otherwise a
   fresh :class:`Encoder` per request that turns OpenAI bodies and SSE into its API's;
5. renders errors in its API's shape (``error`` for an answer, ``Encoder.error_event``
   for a stream that already started).

The pipeline calls these in that order, once per request, on the event loop; a surface
is stateless and shared by all requests (per-request state lives in its ``Encoder``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from inferplane.config import DeploymentConfig
from inferplane.errors import InferplaneError
from inferplane.gateway.http_messages import Request
from inferplane.protocol.routes import Route, SurfaceName
from inferplane.protocol.translating_stream import UNTRANSLATABLE, TranslatingStream
from inferplane.runtimes.base import Capabilities, ToolSupport

__all__ = ["Encoder", "InferenceRequest", "Lookup", "Rejection", "Served", "Surface", "SurfaceRoute",
           "TranslatingEncoder"]


TOOLS_PASS_THROUGH = ToolSupport(True)
"""Tool requests go to the runtime as they are (a Served built without a tool check)."""


class Rejection(InferplaneError):
    """The gateway refuses a request, or gives up on it: the client gets ``status``.

    Raised anywhere on the request path (surface, admission, attempt loop) and rendered once,
    by the request's surface, in its API's shape. ``body``, when set, is an OpenAI error
    envelope already made (a runtime's error, rewritten): the OpenAI surface sends it as is.
    """

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 type_: str | None = None, headers: Iterable[tuple[str, str]] = (),
                 body: bytes | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type_
        """The error type in OpenAI's words (``invalid_request_error``...); None: from the status."""
        self.headers = list(headers)
        self.body = body


@dataclass(frozen=True, slots=True)
class SurfaceRoute:
    """One route a surface serves."""

    path: str
    method: str
    route: Route


@dataclass(slots=True)
class Served:
    """A deployment as the gateway serves it (what validation needs to know of it)."""

    config: DeploymentConfig
    capabilities: Capabilities
    created: int
    """Unix time it was first served (``/v1/models``' ``created``)."""
    parts: frozenset[str] | None
    """Chat content part types its runtime takes (None: not checked)."""
    tools: ToolSupport = TOOLS_PASS_THROUGH
    """Whether its replicas can call tools (``RuntimeAdapter.tool_support_for``)."""


@dataclass(slots=True)
class InferenceRequest:
    """One request in canonical form: OpenAI-shaped, validated, and fixed once made.

    ``data`` is the parsed OpenAI request and ``body`` its bytes; for the OpenAI surface
    ``body`` is the client's buffer itself, forwarded as is when nothing must change.
    Nothing writes it after the surface made it (nor ``data``): an attempt that must send
    something else builds a copy. Not ``frozen=True`` only because it is made per request and
    a frozen dataclass's ``__init__`` is about 10x slower (see ``observability/observer.py``).
    """

    route: Route
    served: Served
    data: dict[str, Any]
    body: bytes
    stream: bool
    include_usage: bool
    """The client asked for usage at the end of a stream (``stream_options.include_usage``)."""
    session: str | None = None
    """Session affinity key (``x-session-id`` header or the request's ``user``)."""
    max_tokens: int | None = None
    extra: Any = None
    """What a surface keeps from the client's request for encoding the answer (its own type)."""

    @property
    def model(self) -> str:
        """The deployment's name."""
        return self.served.config.name


class Encoder(Protocol):
    """Turns the canonical (OpenAI) answer to one request into the client's API. One per request.

    ``body`` and ``chunk`` may raise nothing for well-formed OpenAI input (the gateway
    checked it, or it came from a translator); ``chunk`` gets SSE bytes split anywhere.
    """

    stream_content_type: str
    """``Content-Type`` of a streamed answer (``text/event-stream``, ``application/x-ndjson``)."""

    def body(self, data: bytes) -> bytes:
        """The client's body for a whole 2xx OpenAI answer (``application/json``)."""
        ...

    def chunk(self, data: bytes) -> bytes:
        """The client's stream bytes for these OpenAI SSE bytes (may be empty while buffering)."""
        ...

    def end(self) -> bytes:
        """Bytes after the upstream stream ended cleanly (its ``data: [DONE]`` went through ``chunk``)."""
        ...

    def error_event(self, message: str, code: str) -> bytes:
        """The bytes that end a started stream with an error, in the client's API."""
        ...


class TranslatingEncoder(ABC):
    """An :class:`Encoder` for an API other than OpenAI's: whole answers through ``_translate``,
    streams through a ``protocol`` :class:`TranslatingStream` (``self.stream``, one per request).

    An answer the runtime sent in a shape the client's API cannot carry is a 502 (``body``) or
    an error event that ends the stream (``chunk``), never an exception out of the encoder.
    A subclass sets ``stream``, ``stream_content_type`` and ``answer_as`` (how the 502 names
    its API: ``"as a Message"``) and implements ``_translate``.
    """

    __slots__ = ("stream",)
    stream: TranslatingStream
    stream_content_type: str
    answer_as: str
    """Ends "the runtime's answer cannot be expressed ..."."""

    @abstractmethod
    def _translate(self, obj: Any) -> Any:
        """The client's answer object for a whole parsed OpenAI answer; may raise what
        ``UNTRANSLATABLE`` lists."""

    def body(self, data: bytes) -> bytes:
        try:
            return orjson.dumps(self._translate(orjson.loads(data)))
        except UNTRANSLATABLE as exc:
            raise Rejection(502, f"the runtime's answer cannot be expressed {self.answer_as}: {exc}",
                            code="upstream_invalid_response") from exc

    def chunk(self, data: bytes) -> bytes:
        try:
            return self.stream.feed(data)  # b"" once the stream finished
        except UNTRANSLATABLE as exc:
            if self.stream.finished:
                return b""
            return self.stream.error(f"the runtime sent a stream chunk this API cannot carry: {exc}")

    def end(self) -> bytes:
        return b""

    def error_event(self, message: str, code: str) -> bytes:
        return b"" if self.stream.finished else self.stream.error(message)


Lookup = Callable[[str], Served | None]
"""Finds a served deployment by the name a client sent."""


class Surface(ABC):
    """One client API. See the module docstring for the contract; subclass and register it
    with ``Gateway(surfaces=...)``."""

    name: SurfaceName
    key_headers: tuple[str, ...] = ("authorization",)
    """Request headers that may carry the API key, in the order they are looked at."""
    request_id_header: str | None = None
    """A response header that repeats ``x-request-id`` under this API's own name (Anthropic's
    ``request-id``, which its SDK reads); None: none."""

    @abstractmethod
    def routes(self) -> Iterable[SurfaceRoute]: ...

    @abstractmethod
    def parse(self, route: Route, request: Request, served: Lookup) -> InferenceRequest:
        """The canonical request, or ``Rejection`` (400 invalid, 404 unknown model...)."""

    def encoder(self, req: InferenceRequest) -> Encoder | None:
        """A fresh encoder for this request's answer; None: the client gets OpenAI bytes as they are."""
        return None

    @abstractmethod
    def error(self, rejection: Rejection) -> tuple[int, bytes, list[tuple[str, str]]]:
        """(status, body, headers incl. Content-Type) for a refused request, in this API's shape."""

    @abstractmethod
    def stream_error(self, message: str, code: str) -> bytes:
        """The event that ends a started OpenAI-passthrough stream with an error (encoder None)."""
