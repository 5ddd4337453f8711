"""Forwarding one inference request to a replica: retries before the first byte, SSE passthrough.

Hot path. Per request: one pooled upstream connection, the client's body bytes sent as
they came, upstream chunks written to the client as they arrive (never re-encoded).
Byte scans (``bytes.find``) stand in for JSON parsing where only a fact is needed
(is there content in this chunk? what usage did the runtime report?).

Failure semantics:
- Before any byte went to the client: a stale pooled connection is resent on a fresh
  one invisibly; connect errors, timeouts and 5xx are retried on another replica (up to
  ``max_attempts``); then the client gets 502/503/504 with an OpenAI error body.
- After bytes went out: no retry. A broken upstream stream ends with an SSE error event.
- The client going away cancels the handler; the upstream connection is closed, which
  cancels the generation.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import orjson

from inferplane.config.models import RetryConfig
from inferplane.gateway.errors import error_response
from inferplane.gateway.http1 import Responder
from inferplane.gateway.upstream import (
    ConnectFailed,
    StaleConnection,
    UpstreamError,
    UpstreamPool,
    UpstreamResponse,
    UpstreamTimeout,
)
from inferplane.observability.metrics import GatewayMetrics, ModelMetrics
from inferplane.protocol.errors import sse_error_event
from inferplane.routing.held import NoReplica
from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.routing.router import RouteInfo, Router
from inferplane.runtimes.base import UnsupportedRequest
from inferplane.runtimes.registry import get_adapter

__all__ = ["Forwarder", "has_content"]

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


class Forwarder:
    """Sends requests to replicas chosen by a callback, and relays the answers."""

    def __init__(self, *, pool: UpstreamPool, registry: EndpointRegistry, router: Router,
                 metrics: GatewayMetrics, first_byte_timeout_s: float) -> None:
        self.pool = pool
        self.registry = registry
        self.router = router
        self.metrics = metrics
        self.first_byte_timeout_s = first_byte_timeout_s
        self._usage_capable: dict[str, bool] = {}

    async def _open(self, ep: Endpoint, path: str, body: bytes, model: str) -> UpstreamResponse:
        """Send the request; return once the response status arrived. Raises _Failure."""
        for fresh in (False, True, True):
            try:
                resp = await self.pool.post(ep.url, path, body, fresh=fresh)
            except ConnectFailed as exc:
                raise _Failure("connect", f"cannot reach {ep.id}: {exc}") from exc
            try:
                await resp.headers(self.first_byte_timeout_s)
                return resp
            except StaleConnection:
                # A kept-alive connection the server had already closed: the request got no
                # answer. Resend it on a fresh connection.
                resp.close()
                self.metrics.retries.labels(model, "stale_connection").inc()
            except UpstreamTimeout as exc:
                resp.close()
                raise _Failure("timeout", f"{ep.id} sent no response within "
                                          f"{self.first_byte_timeout_s:.0f} s") from exc
            except UpstreamError as exc:
                resp.close()
                raise _Failure("disconnect", f"{ep.id} failed: {exc}") from exc
            except BaseException:
                resp.close()
                raise
        raise _Failure("disconnect", f"{ep.id} kept closing connections before answering")

    async def forward(self, out: Responder, *, model: str, route: str, data: dict[str, Any], body: bytes,
                      stream: bool, info: RouteInfo, retry: RetryConfig,
                      headers: list[tuple[str, str]], t_start: float) -> None:
        """Serve one validated request; always answers (never raises for upstream trouble)."""
        tried: set[str] = set()
        last_error: _Failure | None = None
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
            if ep.deployment != model:  # a fallback deployment serves it under its own name
                adata = {**data, "model": ep.deployment}
            strip_usage = stream and not _asks_usage(data) and self._streams_usage(ep.runtime)
            if strip_usage:  # ask for usage anyway (for the token metrics); the client won't see it
                adata = {**adata, "stream_options": {**(data.get("stream_options") or {}), "include_usage": True}}
            if adata is not data:
                abody = orjson.dumps(adata)
            if dialect.passthrough:
                path, send = (dialect.chat_path if route == "chat" else dialect.completions_path), abody
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
                    resp = await self._open(ep, path, send, model)
                except _Failure as exc:
                    self._failed(ep, model, exc.kind)
                    tried.add(ep.id)
                    last_error = exc
                    continue
                if resp.status >= 500:
                    detail = (await _read_quietly(resp))[:300].decode("utf-8", "replace")
                    resp.close()
                    self._failed(ep, model, "status_5xx")
                    tried.add(ep.id)
                    last_error = _Failure("status_5xx", f"{ep.id} answered {resp.status}: {detail}")
                    continue
                self.router.succeeded(choice)
                if tried:
                    self.metrics.retries.labels(model, last_error.kind if last_error else "retry").inc()
                headers.append(("x-inferplane-endpoint", ep.id))
                headers.append(("x-inferplane-policy", choice.policy))
                if choice.fallback:
                    headers.append(("x-inferplane-fallback", ep.deployment))
                if stream and resp.status == 200:
                    cached = await self._relay_stream(out, resp, ep, model=model, route=route, headers=headers,
                                                      t_start=t_start, strip_usage=strip_usage,
                                                      include_usage=strip_usage or _asks_usage(data))
                else:
                    cached = await self._relay_body(out, resp, ep, model=model, route=route, headers=headers,
                                                    t_start=t_start)
                self.router.observed(choice, info, cached)
                return
            finally:
                release()
        if last_error is None:
            self.metrics.model(model).request_done(route, 503)
            error_response(out, 503, f"no ready replica for model {model!r}; try again shortly",
                           code="model_not_ready", headers=headers)
            return
        status = 504 if last_error.kind == "timeout" else 502
        self.metrics.model(model).request_done(route, status)
        error_response(out, status, f"upstream failed after {len(tried)} attempt(s): {last_error}",
                       code="upstream_" + last_error.kind, headers=headers)

    def _streams_usage(self, runtime: str) -> bool:
        known = self._usage_capable.get(runtime)
        if known is None:
            known = self._usage_capable[runtime] = get_adapter(runtime).capabilities().streams_usage
        return known

    def _failed(self, ep: Endpoint, model: str, kind: str) -> None:
        self.router.failed(ep)
        self.metrics.upstream_errors.labels(model, ep.id, kind).inc()

    async def _relay_body(self, out: Responder, resp: UpstreamResponse, ep: Endpoint, *, model: str,
                          route: str, headers: list[tuple[str, str]], t_start: float) -> int | None:
        """Relay a whole response; returns the cached prompt tokens the runtime reported, if any."""
        try:
            data = await resp.read()
        except UpstreamError as exc:
            resp.close()
            self._failed(ep, model, "disconnect")
            self.metrics.model(model).request_done(route, 502)
            error_response(out, 502, f"{ep.id} broke off its response: {exc}", code="upstream_disconnect",
                           headers=headers)
            return None
        except BaseException:
            resp.close()
            raise
        resp.release()
        status = resp.status
        ctype = resp.content_type
        if not ep.dialect.passthrough:
            status, data = ep.dialect.response(route, model, status, data)
            ctype = "application/json"
        headers.append(("Content-Type", ctype))
        mm = self.metrics.model(model)
        mm.request_done(route, status)
        cached = None
        if status == 200:
            mm.e2e.observe(time.perf_counter() - t_start)
            cached = self._count_usage(mm, data)
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
                            include_usage: bool, strip_usage: bool) -> int | None:
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
                async for chunk in resp.chunks():
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
                    await out.write(chunk)
                if translator is not None:
                    held += translator.end()
                clean = True
            except UpstreamError as exc:
                self._failed(ep, model, "stream_broken")
                await out.write(sse_error_event(f"the stream from {ep.id} broke off: {exc}",
                                                code="upstream_stream_broken"))
            # account before the final event: a client that read it may look at /metrics at once
            accounted = True
            mm.request_done(route, 200 if clean else 502)
            mm.e2e.observe(time.perf_counter() - t_start)
            cached = self._count_usage(mm, b"".join(tail))
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


async def _read_quietly(resp: UpstreamResponse) -> bytes:
    try:
        return await resp.read()
    except UpstreamError:
        return b""
