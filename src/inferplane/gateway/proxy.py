"""Forwarding one inference request to a replica: retries before the first byte, SSE passthrough.

Hot path. Per request: one pooled upstream connection, the client's body bytes sent as
they came, upstream chunks written to the client as they arrive (never re-encoded).
Byte scans (``bytes.find``) stand in for JSON parsing where only a fact is needed
(is there content in this chunk? what usage did the runtime report?).

Failure semantics:
- Before any byte went to the client: a stale pooled connection is resent on a fresh
  one invisibly; connect errors, timeouts, a frozen replica (no first byte within
  ``probe_after_s`` and no answer to a liveness probe), 5xx, and a 2xx whose body is not
  valid JSON (or too large) are retried on another replica (up to ``max_attempts``); then
  the client gets 502/503/504 with an OpenAI error body (503 and 429 with Retry-After).
- A failure the request caused is not the replica's: a 4xx, a 5xx whose body says so, or
  the same 5xx from a second replica goes back as a 4xx with the runtime's reason, is not
  retried, and is not counted against any replica (so no client can open a breaker).
  A 5xx is counted only once the next attempt shows it was not the request.
- After bytes went out: no retry. A broken, stalled (``stream_idle_timeout_s``, or two
  failed probes in a row, every ``probe_after_s`` of silence) or unterminated upstream stream ends with an
  SSE error event, and its upstream connection is closed (freeing the runtime's slot).
- The client going away cancels the handler; the upstream connection is closed, which
  cancels the generation.
- Every upstream failure and every breaker change is logged at WARNING.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from inferplane.config.models import RetryConfig
from inferplane.gateway.errors import error_response
from inferplane.gateway.faults import UpstreamFault, describe
from inferplane.gateway.http1 import Responder
from inferplane.gateway.liveness import Liveness
from inferplane.gateway.upstream import (
    ConnectFailed,
    StaleConnection,
    UpstreamError,
    UpstreamPool,
    UpstreamResponse,
    UpstreamStalled,
    UpstreamTimeout,
    UpstreamTooLarge,
)
from inferplane.observability.metrics import GatewayMetrics, ModelMetrics
from inferplane.protocol.errors import sse_error_event
from inferplane.routing.held import NoReplica
from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.routing.router import RouteInfo, Router
from inferplane.runtimes.base import UnsupportedRequest
from inferplane.runtimes.registry import get_adapter

__all__ = ["Forwarder", "has_content"]

log = logging.getLogger(__name__)

_REPLICA_GONE = frozenset({"connect", "disconnect", "frozen"})
"""Failure kinds after which a replica may simply be down (restarting), not broken."""

_PROMPT_TOKENS = re.compile(rb'"prompt_tokens":\s*(\d+)')
_COMPLETION_TOKENS = re.compile(rb'"completion_tokens":\s*(\d+)')
_CACHED_TOKENS = re.compile(rb'"cached_tokens":\s*(\d+)')
_DONE = b"data: [DONE]\n\n"
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
    return b'"tool_calls":[' in chunk


class _Failure(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(slots=True)
class _Answered:
    """A non-streamed answer read whole, not yet sent."""

    status: int
    body: bytes
    content_type: str
    passed: list[tuple[str, str]]


class Forwarder:
    """Sends requests to replicas chosen by a callback, and relays the answers."""

    def __init__(self, *, pool: UpstreamPool, registry: EndpointRegistry, router: Router,
                 metrics: GatewayMetrics, first_byte_timeout_s: float, probe_after_s: float = 3.0,
                 probe_timeout_s: float = 3.0, stream_idle_timeout_s: float = 60.0) -> None:
        self.pool = pool
        self.registry = registry
        self.router = router
        self.metrics = metrics
        self.first_byte_timeout_s = first_byte_timeout_s
        self.probe_after_s = probe_after_s
        self.stream_idle_timeout_s = stream_idle_timeout_s
        self.liveness = Liveness(pool, registry, timeout_s=probe_timeout_s)
        self._usage_capable: dict[str, bool] = {}

    async def _open(self, ep: Endpoint, path: str, body: bytes, model: str, tried: set[str]) -> UpstreamResponse:
        """Send the request; return once the response status arrived. Raises _Failure."""
        for fresh in (False, True, True):
            try:
                resp = await self.pool.post(ep.url, path, body, fresh=fresh)
            except ConnectFailed as exc:
                raise _Failure("connect", f"cannot reach {ep.id}: {exc}") from exc
            try:
                await self._first_byte(resp, ep, tried)
                return resp
            except StaleConnection:
                # A kept-alive connection the server had already closed: the request got no
                # answer. Resend it on a fresh connection.
                resp.close()
                self.metrics.retries.labels(model, "stale_connection").inc()
            except _Failure:
                resp.close()
                raise
            except UpstreamError as exc:
                resp.close()
                raise _Failure("disconnect", f"{ep.id} failed: {exc}") from exc
            except BaseException:
                resp.close()
                raise
        raise _Failure("disconnect", f"{ep.id} kept closing connections before answering")

    async def _first_byte(self, resp: UpstreamResponse, ep: Endpoint, tried: set[str]) -> None:
        """Wait for the response status; a probe-aware deadline (docs/reliability.md).

        Every ``probe_after_s`` without an answer, the replica is probed: a replica that
        answers is busy (a long prompt) and the wait goes on, up to ``first_byte_timeout_s``;
        one that does not is frozen, and the request moves on if another replica can take it.
        """
        waited = 0.0
        total = self.first_byte_timeout_s
        while True:
            step = min(self.probe_after_s, total - waited)
            try:
                await resp.headers(step)
                return
            except UpstreamTimeout as exc:
                waited += step
                if waited >= total:
                    raise _Failure("timeout", f"{ep.id} sent no response within {total:.0f} s") from exc
            if self._another_ready(ep, tried) and not await self.liveness.alive(ep):
                raise _Failure("frozen", f"{ep.id} sent no response for {waited:.0f} s and does not answer its "
                                         "health probe")

    def _another_ready(self, ep: Endpoint, tried: set[str]) -> bool:
        return any(e is not ep and e.id not in tried for e in self.registry.ready(ep.deployment))

    async def forward(self, out: Responder, *, model: str, route: str, data: dict[str, Any], body: bytes,
                      stream: bool, info: RouteInfo, retry: RetryConfig,
                      headers: list[tuple[str, str]], t_start: float, encoder: Encoder | None = None) -> None:
        """Serve one validated request; always answers (never raises for upstream trouble).

        ``encoder``: turns the OpenAI answer into the client's (the Responses API over chat);
        None passes the runtime's bytes through."""
        tried: set[str] = set()
        last_error: _Failure | None = None
        unproven: list[tuple[Endpoint, UpstreamFault]] = []  # 5xx answers not yet blamed on a replica
        try:
            for attempt in range(retry.max_attempts):
                if attempt and retry.backoff_s:
                    await asyncio.sleep(retry.backoff_s * 2 ** (attempt - 1))
                choice = self.router.pick(info, tried)
                if choice is None and not tried:  # nothing ready at all: hold the request for a replica
                    try:
                        choice = await self.router.wait_pick(info, tried)
                    except NoReplica as exc:
                        self.metrics.model(model).request_done(route, 503)
                        error_response(out, 503, str(exc), code=exc.code,
                                       headers=[*headers, ("Retry-After", exc.retry_after_header)])
                        return
                if choice is None:
                    break
                ep = choice.endpoint
                dialect = ep.dialect
                adata, abody = data, body
                upstream_name = ep.upstream_model or ep.deployment  # a fallback serves it under its own name
                if upstream_name != model:
                    adata = {**data, "model": upstream_name}
                strip_usage = stream and not _asks_usage(data) and self._streams_usage(ep.runtime)
                if strip_usage:  # ask for usage anyway (for the token metrics); the client won't see it
                    adata = {**adata,
                             "stream_options": {**(data.get("stream_options") or {}), "include_usage": True}}
                if adata is not data:  # re-encoding the parsed request beats any byte search (docs/gateway.md)
                    abody = orjson.dumps(adata)
                if dialect.passthrough:
                    path, send = dialect.path(route), abody
                else:
                    try:
                        path, send = dialect.request(route, adata, abody)
                    except UnsupportedRequest as exc:
                        self.metrics.model(model).request_done(route, 400)
                        error_response(out, 400, f"{ep.runtime}: {exc}", param=exc.param,
                                       code="unsupported_parameter", headers=headers)
                        return
                release = self.registry.acquire(ep)
                try:
                    try:
                        resp = await self._open(ep, path, send, model, tried)
                        answered = None if stream and resp.status == 200 else await self._read(resp, ep, route, model)
                        if answered is None and dialect.passthrough and \
                                not resp.content_type.startswith("text/event-stream"):
                            await self._read(resp, ep, route, model)  # the check raises for a non-JSON body
                            raise _Failure("invalid_response", f"{ep.id} answered a stream request with "
                                                               f"{resp.content_type}, not an event stream")
                    except _Failure as exc:
                        self._failed(ep, model, exc.kind, str(exc))
                        tried.add(ep.id)
                        last_error = exc
                        continue
                    if answered is not None and answered.status >= 500:
                        fault = describe(answered.status, answered.body, runtime=ep.runtime, managed=ep.managed)
                        repeated = not fault.request_fault and any(f.signature == fault.signature
                                                                   for _, f in unproven)
                        if repeated:
                            fault = describe(answered.status, answered.body, runtime=ep.runtime,
                                             managed=ep.managed, repeated=True)
                        if not fault.request_fault:
                            unproven.append((ep, fault))
                            tried.add(ep.id)
                            last_error = _Failure("status_5xx", f"{ep.id} answered {answered.status}: "
                                                                f"{fault.message[:300]}")
                            continue
                        # the request caused it (its body says so, or a second replica failed the
                        # same way): the client's 4xx; no replica is blamed
                        unproven.clear()
                        self.router.succeeded(choice)
                        headers.append(("x-inferplane-endpoint", ep.id))
                        self._send_error(out, model, route, ep, fault, answered.passed, headers)
                        return
                    if answered is not None and answered.status >= 400:
                        unproven.clear()  # a 5xx before it, for this request, was most likely the request too
                    self.router.succeeded(choice)
                    if tried:
                        self.metrics.retries.labels(model, last_error.kind if last_error else "retry").inc()
                    headers.append(("x-inferplane-endpoint", ep.id))
                    headers.append(("x-inferplane-policy", choice.policy))
                    if choice.fallback:
                        headers.append(("x-inferplane-fallback", ep.deployment))
                    if answered is None:
                        headers += resp.passed_headers
                        cached = await self._relay_stream(out, resp, ep, model=model, route=route, headers=headers,
                                                          t_start=t_start, strip_usage=strip_usage,
                                                          include_usage=strip_usage or _asks_usage(data),
                                                          encoder=encoder)
                    else:
                        cached = self._send_body(out, answered, ep, model=model, route=route, headers=headers,
                                                 t_start=t_start, encoder=encoder)
                    self.router.observed(choice, info, cached)
                    return
                finally:
                    release()
        finally:
            for ep, fault in unproven:  # not the request's fault after all: these replicas failed
                self._failed(ep, model, "status_5xx", fault.message[:300])
        if last_error is None:
            self.metrics.model(model).request_done(route, 503)
            error_response(out, 503, f"no ready replica for model {model!r}; try again shortly",
                           code="model_not_ready", headers=[*headers, ("Retry-After", str(self._retry_after(model)))])
            return
        if last_error.kind in _REPLICA_GONE and not self.registry.ready(model):
            # the replica died (or froze) under the request and none is left: the model is not
            # ready right now, and the client may try again once a replica is back
            self.metrics.model(model).request_done(route, 503)
            error_response(out, 503, f"no ready replica for model {model!r} after {len(tried)} attempt(s) "
                                     f"({last_error}); try again shortly", code="model_not_ready",
                           headers=[*headers, ("Retry-After", str(self._retry_after(model)))])
            return
        status = 504 if last_error.kind == "timeout" else 502
        self.metrics.model(model).request_done(route, status)
        error_response(out, status, f"upstream failed after {len(tried)} attempt(s): {last_error}",
                       code="upstream_" + last_error.kind, headers=headers)

    def _retry_after(self, model: str) -> int:
        """Seconds until a replica of ``model`` may take traffic again (at least 1)."""
        now = time.monotonic()
        waits = [b.reopens_in(now) for e in self.registry.endpoints(model)
                 if (b := self.router.breakers.get(e.id)) is not None and e.ready]
        return max(1, math.ceil(min(waits))) if waits else 1

    def _streams_usage(self, runtime: str) -> bool:
        known = self._usage_capable.get(runtime)
        if known is None:
            known = self._usage_capable[runtime] = get_adapter(runtime).capabilities().streams_usage
        return known

    def _failed(self, ep: Endpoint, model: str, kind: str, detail: str) -> None:
        log.warning("upstream %s (%s) failed: %s: %s", ep.id, ep.url, kind, detail)
        self.router.failed(ep)
        self.metrics.upstream_errors.labels(model, ep.id, kind).inc()

    async def _read(self, resp: UpstreamResponse, ep: Endpoint, route: str, model: str) -> _Answered:
        """Read a whole answer and check it; raises _Failure for a body no client should get."""
        try:
            data = await resp.read()
        except UpstreamTooLarge as exc:
            resp.close()
            raise _Failure("too_large", f"{ep.id}: {exc}") from exc
        except UpstreamError as exc:
            resp.close()
            raise _Failure("disconnect", f"{ep.id} broke off its response: {exc}") from exc
        except BaseException:
            resp.close()
            raise
        resp.release()
        status, ctype = resp.status, resp.content_type
        if not ep.dialect.passthrough:
            try:
                status, data = ep.dialect.response(route, model, status, data)
            except ValueError as exc:
                raise _Failure("invalid_response", f"{ep.id} answered {status} with a body its dialect "
                                                   f"cannot read: {exc}") from exc
            ctype = "application/json"
        if status < 300:
            try:
                orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise _Failure("invalid_response", f"{ep.id} answered {status} with a body that is not JSON "
                                                   f"({ctype}, {len(data)} bytes: {_preview(data)})") from exc
        return _Answered(status, data, ctype, resp.passed_headers)

    def _send_error(self, out: Responder, model: str, route: str, ep: Endpoint, fault: UpstreamFault,
                    passed: list[tuple[str, str]], headers: list[tuple[str, str]]) -> None:
        hs = [*headers, *passed, ("Content-Type", "application/json")]
        if fault.status in (429, 503) and not any(k == "retry-after" for k, _ in passed):
            hs.append(("Retry-After", "1"))
        self.metrics.model(model).request_done(route, fault.status)
        out.send(fault.status, fault.body, hs)

    def _send_body(self, out: Responder, answered: _Answered, ep: Endpoint, *, model: str,
                   route: str, headers: list[tuple[str, str]], t_start: float,
                   encoder: Encoder | None = None) -> int | None:
        """Send a checked whole answer; returns the cached prompt tokens the runtime reported, if any."""
        status, data = answered.status, answered.body
        if status >= 400:  # only the error path pays for the rewrite into OpenAI's shape
            self._send_error(out, model, route, ep, describe(status, data, runtime=ep.runtime, managed=ep.managed),
                             answered.passed, headers)
            return None
        if encoder is not None:
            data = encoder.body(data)
        headers.append(("Content-Type", "application/json" if encoder is not None else answered.content_type))
        if answered.passed:
            headers += answered.passed
        mm = self.metrics.model(model)
        mm.request_done(route, status)
        cached = None
        if status == 200:
            mm.e2e.observe(time.perf_counter() - t_start)
            cached = self._count_usage(mm, answered.body)
        out.send(status, data, headers)
        return cached

    @staticmethod
    def _count_usage(mm: ModelMetrics, data: bytes) -> int | None:
        """Count the usage a runtime reported; returns its cached prompt tokens, if it said."""
        start = data.rfind(b'"usage"')
        if start < 0:
            return None
        data = data[start:]
        p = _PROMPT_TOKENS.search(data)
        if p is None:
            return None
        mm.prompt_tokens.inc(int(p.group(1)))
        c = _COMPLETION_TOKENS.search(data)
        if c:
            mm.completion_tokens.inc(int(c.group(1)))
        k = _CACHED_TOKENS.search(data)
        return int(k.group(1)) if k else None

    async def _relay_stream(self, out: Responder, resp: UpstreamResponse, ep: Endpoint, *, model: str,
                            route: str, headers: list[tuple[str, str]], t_start: float,
                            include_usage: bool, strip_usage: bool, encoder: Encoder | None = None) -> int | None:
        """Relay an SSE stream; returns the cached prompt tokens the runtime reported, if any."""
        m = self.metrics
        mm = m.model(model)
        headers += [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]
        first: float | None = None
        last = 0.0
        tail: list[bytes] = []
        clean = accounted = False
        held = b""
        itl = mm.itl
        translator = ep.dialect.stream(route, model, include_usage=include_usage)
        try:
            out.start(200, headers)
            try:
                async for chunk in resp.chunks(stall_s=self.probe_after_s, idle_timeout_s=self.stream_idle_timeout_s,
                                               alive=lambda: self.liveness.alive(ep)):
                    if translator is not None:
                        chunk = translator.feed(chunk)
                        if not chunk:
                            continue
                    if has_content(chunk):
                        now = time.perf_counter()
                        if first is None:
                            first = now
                            mm.ttft.observe(now - t_start)
                        else:
                            itl.observe(now - last)
                        last = now
                    tail.append(chunk)
                    if len(tail) > 4:
                        del tail[0]
                    if strip_usage and b'"choices":[]' in chunk:
                        chunk = _without_usage_events(chunk)
                    if chunk.endswith(_DONE):  # held back until the request is accounted for
                        held = chunk
                        continue
                    if encoder is not None:
                        chunk = encoder.chunk(chunk)
                        if not chunk:
                            continue
                    await out.write(chunk)
                if translator is not None:
                    held += translator.end()
                    clean = True
                elif held or b"".join(tail).rstrip().endswith(_DONE.rstrip()):
                    clean = True
                else:
                    self._failed(ep, model, "stream_incomplete", "the stream ended without data: [DONE]")
                    await out.write(_error_event(encoder, f"the stream from {ep.id} ended without its final "
                                                          "'data: [DONE]' (the reply may be cut short)",
                                                 "upstream_stream_incomplete"))
            except UpstreamStalled as exc:
                self._failed(ep, model, "stream_stalled", str(exc))
                await out.write(_error_event(encoder, f"the stream from {ep.id} stalled: {exc}",
                                             "upstream_stream_stalled"))
            except UpstreamError as exc:
                self._failed(ep, model, "stream_broken", str(exc))
                await out.write(_error_event(encoder, f"the stream from {ep.id} broke off: {exc}",
                                             "upstream_stream_broken"))
            # account before the final event: a client that read it may look at /metrics at once
            accounted = True
            mm.request_done(route, 200 if clean else 502)
            mm.e2e.observe(time.perf_counter() - t_start)
            cached = self._count_usage(mm, b"".join(tail))
            if encoder is not None:
                held = encoder.chunk(held) + (encoder.end() if clean else b"")
            await out.write(held)
            out.end()
        except (ConnectionResetError, asyncio.CancelledError):
            # the client went away: closing the upstream connection cancels the generation
            m.client_disconnects.labels(model).inc()
            if not accounted:
                mm.request_done(route, 499)
            resp.close()
            raise
        if clean:
            resp.release()
        else:
            resp.close()
        return cached


class Encoder(Protocol):
    """Turns OpenAI answers into the client's API (gateway/openai_routes.py ``ResponsesEncoder``)."""

    stream_content_type: str

    def body(self, data: bytes) -> bytes: ...
    def chunk(self, data: bytes) -> bytes: ...
    def end(self) -> bytes: ...
    def error_event(self, message: str, code: str) -> bytes: ...


def _error_event(encoder: Encoder | None, message: str, code: str) -> bytes:
    return sse_error_event(message, code=code) if encoder is None else encoder.error_event(message, code)


def _asks_usage(data: dict[str, Any]) -> bool:
    opts = data.get("stream_options")
    return isinstance(opts, dict) and opts.get("include_usage") is True


def _without_usage_events(chunk: bytes) -> bytes:
    """``chunk`` minus the usage-only SSE events (``"choices":[]``) it holds whole.

    Used when the gateway asked for usage the client did not; an event split across
    chunks is left as it is (a usage-only chunk is valid OpenAI either way).
    """
    events = chunk.split(b"\n\n")
    kept = [e for e in events if not (b'"choices":[]' in e and b'"usage"' in e)]
    return b"\n\n".join(kept) if len(kept) != len(events) else chunk


def _preview(data: bytes) -> str:
    text = data[:80].decode("utf-8", "replace").replace("\n", " ")
    return repr(text + ("..." if len(data) > 80 else ""))
