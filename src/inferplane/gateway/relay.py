"""Relaying a replica's answer to the client: a whole body, or a stream as it arrives.

Hot path. Upstream chunks are written to the client as they arrive, from the upstream
connection's data callback (``UpstreamResponse.forward``): no task wakes up per chunk, and a
client that reads slower than the runtime writes pauses the upstream socket. On the OpenAI
surface with an OpenAI-speaking runtime chunks are never re-encoded. Byte scans (``bytes.find``)
stand in for JSON parsing where only a fact is needed (is there content in this chunk?
what usage did the runtime report?); never ``sub in chunk`` on the per-chunk path: on Python
3.11 a bytes operand of ``in`` is first tried as an int, and the TypeError raised and cleared
inside costs about 2.5k CPU instructions, ``find`` about 1.3k.

A stream that started ends either with the runtime's own end (``data: [DONE]``, held back
until the request is accounted for, so a client that read it and looks at ``/metrics``
at once sees it counted) or with an error event in the client's API: a broken, stalled
or unterminated upstream stream, or one its dialect cannot translate (malformed NDJSON
from Ollama). Either way the request is accounted exactly once, and the caller closes the
upstream connection unless the stream ended cleanly.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter as _now
from typing import Any

import orjson

from inferplane.errors import TranslationError
from inferplane.gateway.exchange import Exchange
from inferplane.gateway.liveness import Liveness
from inferplane.gateway.upstream import (
    UpstreamError,
    UpstreamResponse,
    UpstreamStalled,
    UpstreamTooLarge,
)
from inferplane.observability.observer import Usage
from inferplane.routing.registry import Endpoint
from inferplane.runtimes.base import StreamTranslator

__all__ = ["Answered", "Failure", "Relay", "has_content", "usage_in", "usage_of"]

_PROMPT_TOKENS = re.compile(rb'"prompt_tokens":\s*(\d+)')
_COMPLETION_TOKENS = re.compile(rb'"completion_tokens":\s*(\d+)')
_CACHED_TOKENS = re.compile(rb'"cached_tokens":\s*(\d+)')
_DONE = b"data: [DONE]\n\n"
_DONE_STRIPPED = _DONE.rstrip()
_CONTENT_KEYS = (b'content":"', b'content": "', b'"text":"', b'"text": "')


def has_content(chunk: bytes) -> bool:
    """True if an SSE chunk carries generated text, reasoning or a tool call (not role-only)."""
    for key in _CONTENT_KEYS:
        i = chunk.find(key)
        while i >= 0:
            j = i + len(key)
            if chunk[j : j + 1] != b'"':
                return True
            i = chunk.find(key, j)
    return chunk.find(b'"tool_calls":[') >= 0


def usage_of(data: bytes) -> Usage | None:
    """The usage an OpenAI body or the tail of a stream reports (None: it says none)."""
    start = data.rfind(b'"usage"')
    if start < 0:
        return None
    p = _PROMPT_TOKENS.search(data, start)  # from "usage" on, without copying the tail
    if p is None:
        return None
    c = _COMPLETION_TOKENS.search(data, start)
    k = _CACHED_TOKENS.search(data, start)
    return Usage(int(p.group(1)), int(c.group(1)) if c else None, int(k.group(1)) if k else None)


def usage_in(obj: Any) -> Usage | None:
    """``usage_of`` for an OpenAI body already parsed (``Relay.read`` parses every 2xx body to
    check it): its ``usage`` object's token counts, read from the dict (three regex searches over
    the bytes cost about 10k CPU instructions; these lookups a tenth of it)."""
    u = obj.get("usage") if type(obj) is dict else None
    if type(u) is not dict:
        return None
    p = u.get("prompt_tokens")
    if type(p) is not int:
        return None
    c = u.get("completion_tokens")
    details = u.get("prompt_tokens_details")
    k = details.get("cached_tokens") if type(details) is dict else None
    return Usage(p, c if type(c) is int else None, k if type(k) is int else None)


class Failure(Exception):
    """One attempt failed in a way another replica may not (``kind`` names how)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(slots=True)
class Answered:
    """A non-streamed answer read whole and checked, not yet sent."""

    status: int
    body: bytes
    content_type: str
    passed: list[tuple[str, str]]
    usage: Usage | None
    """What a 200's body reports it used (read from the body ``read`` parsed to check it)."""


Failed = Callable[[Endpoint, str, str], None]
"""Blames a replica for a failure: (endpoint, kind, detail)."""


class Relay:
    """Reads and relays answers for the attempt loop. Event-loop bound."""

    def __init__(self, *, liveness: Liveness, failed: Failed, probe_after_s: float,
                 stream_idle_timeout_s: float) -> None:
        self.liveness = liveness
        self.failed = failed
        self.probe_after_s = probe_after_s
        self.stream_idle_timeout_s = stream_idle_timeout_s

    async def read(self, resp: UpstreamResponse, ep: Endpoint, x: Exchange) -> Answered:
        """Read a whole answer and check it; raises Failure for a body no client should get.
        The connection is released when read to the end (the caller's ``with`` closes it otherwise)."""
        try:
            data = await resp.read()
        except UpstreamTooLarge as exc:
            raise Failure("too_large", f"{ep.id}: {exc}") from exc
        except UpstreamError as exc:
            raise Failure("disconnect", f"{ep.id} broke off its response: {exc}") from exc
        resp.release()
        status, ctype = resp.status, resp.content_type
        dialect = ep.dialect
        if not dialect.passthrough:
            try:
                status, data = dialect.response(x.req.route, x.req.model, status, data)
            except ValueError as exc:
                raise Failure("invalid_response", f"{ep.id} answered {status} with a body its dialect "
                                                  f"cannot read: {exc}") from exc
            ctype = "application/json"
        usage = None
        if status < 300:
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise Failure("invalid_response", f"{ep.id} answered {status} with a body that is not JSON "
                                                  f"({ctype}, {len(data)} bytes: {_preview(data)})") from exc
            if status == 200:
                usage = usage_in(obj)
        return Answered(status, data, ctype, resp.passed_headers, usage)

    def send(self, x: Exchange, answered: Answered) -> Usage | None:
        """Send a checked whole answer below 400 (through the surface's encoder, made here:
        ``x.encoder``); returns the usage it reports."""
        status, data = answered.status, answered.body
        headers = x.headers
        enc = x.encoder = x.api.encoder(x.req)
        if enc is None:
            headers.append(("Content-Type", answered.content_type))
        else:
            headers.append(("Content-Type", "application/json"))
        if answered.passed:
            headers += answered.passed
        usage = answered.usage
        x.finish(status, usage=usage)
        x.out.send(status, data if enc is None else enc.body(data), headers)
        return usage

    async def stream(self, x: Exchange, resp: UpstreamResponse, ep: Endpoint, *, strip_usage: bool,
                     attempt: Callable[[str, str], None]) -> Usage | None:
        """Relay an SSE stream (status 200 already received); returns the usage it reported.
        The surface's encoder (``x.encoder``) is made here, while the first chunk is awaited.

        Reports the attempt (``attempt(outcome, detail)``: how the stream failed, or ``ok`` when an
        observer takes answering attempts, ``Observers.wants_ok_attempts``) and
        then the request (``x.finish``), both before the final event. Releases the connection
        when the stream ended cleanly; otherwise the caller's ``with resp`` closes it, which
        frees the runtime's slot.
        """
        out = x.out
        enc = x.encoder = x.api.encoder(x.req)
        headers = x.headers
        headers += resp.passed_headers
        headers += [("Content-Type", "text/event-stream" if enc is None else enc.stream_content_type),
                    ("Cache-Control", "no-cache")]
        kind = detail = ""
        translator = ep.dialect.stream(x.req.route, x.req.model, include_usage=strip_usage or x.req.include_usage)
        chunks = _Chunks(x, translator, strip_usage)
        alive: Callable[[], Awaitable[bool]] = lambda: self.liveness.alive(ep)  # noqa: E731
        out.start(200, headers)
        try:
            await resp.forward(chunks.feed, drain=out.drain, stall_s=self.probe_after_s,
                               idle_timeout_s=self.stream_idle_timeout_s, alive=alive)
            held = chunks.held
            if translator is not None:
                try:
                    held += translator.end()
                except Exception as exc:
                    raise TranslationError(f"{type(exc).__name__}: {exc}") from exc
            elif not held and not b"".join(chunks.tail).rstrip().endswith(_DONE_STRIPPED):
                kind, detail = "stream_incomplete", "the stream ended without data: [DONE]"
                message = f"the stream from {ep.id} ended without its final 'data: [DONE]' (the reply may be cut short)"
        except UpstreamStalled as exc:
            kind, detail = "stream_stalled", str(exc)
            message = f"the stream from {ep.id} stalled: {exc}"
        except UpstreamError as exc:
            kind, detail = "stream_broken", str(exc)
            message = f"the stream from {ep.id} broke off: {exc}"
        except TranslationError as exc:
            kind, detail = "stream_invalid", str(exc)
            message = f"the stream from {ep.id} could not be read: {exc}"
        usage = usage_of(b"".join(chunks.tail))
        first = chunks.first
        ttft = None if first is None else first - x.t_start
        if kind:
            self.failed(ep, kind, detail)
            code = "upstream_" + kind
            attempt(kind, detail)
            x.finish(502, error_code=code, usage=usage, ttft_s=ttft)
            out.end(x.stream_error(message, code))
            return usage
        if x.observers.wants_ok_attempts:  # else no observer would read it: not even made
            attempt("ok", "")
        x.finish(200, usage=usage, ttft_s=ttft)
        if enc is not None:
            held = enc.chunk(held) + enc.end()
        out.end(held)
        resp.release()
        return usage


class _Chunks:
    """One stream's work per upstream chunk, done in the upstream connection's data callback
    (``feed``, the sink of ``UpstreamResponse.forward``): translate (a non-OpenAI runtime),
    time the first token and the gaps, keep the tail (where the usage is), hold back the
    final ``data: [DONE]``, encode (a non-OpenAI surface), write. What it raises ends the stream
    (``forward`` raises it again in the relay's task): a translator's error as TranslationError."""

    __slots__ = ("enc", "first", "gaps", "held", "last", "observers", "rec", "strip_usage", "tail", "translator",
                 "write")

    def __init__(self, x: Exchange, translator: StreamTranslator | None, strip_usage: bool) -> None:
        self.translator = translator
        self.enc = x.encoder
        self.write = x.out.write_now
        self.observers = x.observers
        self.rec = x
        self.gaps = x.observers.wants_gaps
        self.strip_usage = strip_usage
        self.first: float | None = None
        self.last = 0.0
        self.tail: deque[bytes] = deque(maxlen=4)
        self.held = b""

    def feed(self, chunk: bytes) -> bool:
        """Relay one upstream chunk; True when the client is full (see ``UpstreamResponse.forward``)."""
        if self.translator is not None:
            try:
                chunk = self.translator.feed(chunk)
            except Exception as exc:  # whatever the translator raised: the runtime sent bytes it cannot read
                raise TranslationError(f"{type(exc).__name__}: {exc}") from exc
            if not chunk:
                return False
        timed = (self.first is None or self.gaps) and has_content(chunk)
        now = _now() if timed else 0.0
        self.tail.append(chunk)
        if self.strip_usage and chunk.find(b'"choices":[]') >= 0:
            chunk = _without_usage_events(chunk)
        if chunk.endswith(_DONE):  # held back until the request is accounted for
            self.held = chunk
            full = False
        else:
            full = self.write(chunk if self.enc is None else self.enc.chunk(chunk))
        if timed:  # the observers hear of it after the client got it
            if self.first is None:
                self.first = now
                self.observers.first_token(self.rec, now)
            else:
                self.observers.token_gap(self.rec, now - self.last)
            self.last = now
        return full


def _without_usage_events(chunk: bytes) -> bytes:
    """``chunk`` minus the usage-only SSE events (``"choices":[]``) it holds whole.

    Used when the gateway asked for usage the client did not; an event split across
    chunks is left as it is (a usage-only chunk is valid OpenAI either way).
    """
    events = chunk.split(b"\n\n")
    kept = [e for e in events if not (e.find(b'"choices":[]') >= 0 and e.find(b'"usage"') >= 0)]
    return b"\n\n".join(kept) if len(kept) != len(events) else chunk


def _preview(data: bytes) -> str:
    text = data[:80].decode("utf-8", "replace").replace("\n", " ")
    return repr(text + ("..." if len(data) > 80 else ""))
