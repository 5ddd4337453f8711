"""Forwarding one inference request to a replica: retries before the first byte, SSE passthrough.

Hot path. Per request: one pooled upstream connection, the client's body bytes sent as
they came, upstream chunks written to the client as they arrive (never re-encoded).
Byte scans (``bytes.find``) stand in for JSON parsing where only a fact is needed
(is there content in this chunk? what usage did the runtime report?).

Failure semantics:
- Before any byte went to the client: a stale pooled connection is retried on a fresh
  one invisibly; connect errors, timeouts and 5xx are retried on another replica (up to
  ``max_attempts``); then the client gets 502/503/504 with an OpenAI error body.
- After bytes went out: no retry. A broken upstream stream ends with an SSE error event.
- The client going away closes the upstream connection, which cancels the generation.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from inferplane.gateway.errors import error_response
from inferplane.observability.metrics import GatewayMetrics
from inferplane.protocol.errors import sse_error_event
from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.runtimes.base import UnsupportedRequest

__all__ = ["Forwarder", "UpstreamPool"]

_PROMPT_TOKENS = re.compile(rb'"prompt_tokens":\s*(\d+)')
_COMPLETION_TOKENS = re.compile(rb'"completion_tokens":\s*(\d+)')
_STALE_ERRORS = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
_JSON_HEADERS = {"Content-Type": "application/json"}


class UpstreamPool:
    """One aiohttp session (a keep-alive connection pool) per upstream base URL."""

    def __init__(self, *, connect_timeout_s: float, keepalive_s: float = 4.0) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout_s, sock_read=None)
        self._keepalive_s = keepalive_s

    def session(self, base_url: str) -> aiohttp.ClientSession:
        s = self._sessions.get(base_url)
        if s is None or s.closed:
            # keep-alive shorter than cpp-httplib's 5 s server-side idle timeout, so the pool
            # rarely hands out a connection the server is about to close.
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=self._keepalive_s, ttl_dns_cache=None)
            s = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
            self._sessions[base_url] = s
        return s

    async def discard(self, base_url: str) -> None:
        s = self._sessions.pop(base_url, None)
        if s is not None:
            await s.close()

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for s in sessions:
            await s.close()


@dataclass(slots=True)
class Attempt:
    endpoint: Endpoint
    response: aiohttp.ClientResponse
    release: Callable[[], None]


class UpstreamFailure(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _has_content(chunk: bytes) -> bool:
    """True if an SSE chunk carries generated text, reasoning or a tool call (not role-only)."""
    for key in (b'content":"', b'content": "', b'"text":"', b'"text": "'):
        i = chunk.find(key)
        while i >= 0:
            j = i + len(key)
            if chunk[j : j + 1] != b'"':
                return True
            i = chunk.find(key, j)
    return b'"tool_calls":[' in chunk


class Forwarder:
    """Sends requests to replicas chosen by a callback, and relays the answers."""

    def __init__(
        self,
        *,
        pool: UpstreamPool,
        registry: EndpointRegistry,
        metrics: GatewayMetrics,
        max_attempts: int,
        first_byte_timeout_s: float,
    ) -> None:
        self.pool = pool
        self.registry = registry
        self.metrics = metrics
        self.max_attempts = max_attempts
        self.first_byte_timeout_s = first_byte_timeout_s

    async def _open(self, ep: Endpoint, path: str, body: bytes, model: str) -> aiohttp.ClientResponse:
        """Send the request, return once response headers arrived. Raises UpstreamFailure."""
        session = self.pool.session(ep.url)
        url = ep.url + path
        for fresh_try in range(3):
            try:
                async with asyncio.timeout(self.first_byte_timeout_s):
                    return await session.post(url, data=body, headers=_JSON_HEADERS)
            except _STALE_ERRORS as exc:
                # A kept-alive connection the server had already closed: the request never
                # got an answer. Resend on a fresh connection (the dead one left the pool).
                if isinstance(exc, aiohttp.ClientConnectorError) or fresh_try == 2:
                    raise UpstreamFailure("connect", f"cannot reach {ep.id}: {exc}") from exc
                self.metrics.retries.labels(model, "stale_connection").inc()
            except TimeoutError as exc:
                raise UpstreamFailure(
                    "timeout", f"{ep.id} sent no response within {self.first_byte_timeout_s:.0f} s"
                ) from exc
            except aiohttp.ClientError as exc:
                raise UpstreamFailure("disconnect", f"{ep.id} failed: {exc}") from exc
        raise AssertionError("unreachable")

    async def forward(
        self,
        request: web.Request,
        *,
        model: str,
        route: str,
        data: dict[str, Any],
        body: bytes,
        stream: bool,
        pick: Callable[[set[str]], Endpoint | None],
        headers: dict[str, str],
        t_start: float,
    ) -> web.StreamResponse:
        """Serve one validated request; always returns a response (never raises for upstream trouble)."""
        tried: set[str] = set()
        last_error: UpstreamFailure | None = None
        for _ in range(self.max_attempts):
            ep = pick(tried)
            if ep is None:
                break
            dialect = ep.dialect
            if dialect.passthrough:
                path, send = (dialect.chat_path if route == "chat" else dialect.completions_path), body
            else:
                try:
                    path, send = dialect.request(route, data, body)
                except UnsupportedRequest as exc:
                    self.metrics.requests.labels(model, route, "400").inc()
                    return error_response(400, f"{ep.runtime}: {exc}", param=exc.param,
                                          code="unsupported_parameter", headers=headers)
            release = self.registry.acquire(ep)
            try:
                resp = await self._open(ep, path, send, model)
            except UpstreamFailure as exc:
                release()
                self._failed(ep, model, exc.kind)
                tried.add(ep.id)
                last_error = exc
                continue
            except BaseException:
                release()
                raise
            if resp.status >= 500:
                detail = (await _read_quietly(resp))[:300].decode("utf-8", "replace")
                resp.release()
                release()
                self._failed(ep, model, "status_5xx")
                tried.add(ep.id)
                last_error = UpstreamFailure("status_5xx", f"{ep.id} answered {resp.status}: {detail}")
                continue
            ep.consecutive_failures = 0
            if len(tried):
                self.metrics.retries.labels(model, last_error.kind if last_error else "retry").inc()
            headers["x-inferplane-endpoint"] = ep.id
            attempt = Attempt(ep, resp, release)
            if stream and resp.status == 200:
                return await self._relay_stream(request, attempt, model=model, route=route,
                                                headers=headers, t_start=t_start)
            return await self._relay_body(request, attempt, model=model, route=route,
                                          headers=headers, t_start=t_start)
        if last_error is None:
            self.metrics.requests.labels(model, route, "503").inc()
            return error_response(503, f"no ready replica for model {model!r}; try again shortly",
                                  code="model_not_ready", headers=headers)
        status = 504 if last_error.kind == "timeout" else 502
        self.metrics.requests.labels(model, route, str(status)).inc()
        return error_response(status, f"upstream failed after {len(tried)} attempt(s): {last_error}",
                              code="upstream_" + last_error.kind, headers=headers)

    def _failed(self, ep: Endpoint, model: str, kind: str) -> None:
        ep.consecutive_failures += 1
        self.metrics.upstream_errors.labels(model, ep.id, kind).inc()

    async def _relay_body(self, request: web.Request, a: Attempt, *, model: str, route: str,
                          headers: dict[str, str], t_start: float) -> web.StreamResponse:
        try:
            try:
                data = await a.response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                a.response.close()
                self._failed(a.endpoint, model, "disconnect")
                self.metrics.requests.labels(model, route, "502").inc()
                return error_response(502, f"{a.endpoint.id} broke off its response: {exc}",
                                      code="upstream_disconnect", headers=headers)
            a.response.release()
        finally:
            a.release()
        status = a.response.status
        headers["Content-Type"] = a.response.headers.get("Content-Type", "application/json")
        dialect = a.endpoint.dialect
        if not dialect.passthrough:
            status, data = dialect.response(route, model, status, data)
            headers["Content-Type"] = "application/json"

        m = self.metrics
        m.requests.labels(model, route, str(status)).inc()
        if status == 200:
            m.e2e.labels(model).observe(time.perf_counter() - t_start)
            self._count_usage(model, data)
        return web.Response(body=data, status=status, headers=headers)

    def _count_usage(self, model: str, data: bytes) -> None:
        p = _PROMPT_TOKENS.search(data)
        c = _COMPLETION_TOKENS.search(data)
        if p:
            self.metrics.prompt_tokens.labels(model).inc(int(p.group(1)))
        if c:
            self.metrics.completion_tokens.labels(model).inc(int(c.group(1)))

    async def _relay_stream(self, request: web.Request, a: Attempt, *, model: str, route: str,
                            headers: dict[str, str], t_start: float) -> web.StreamResponse:
        m = self.metrics
        upstream = a.response
        headers["Content-Type"] = "text/event-stream"
        headers["Cache-Control"] = "no-cache"
        out = web.StreamResponse(status=200, headers=headers)
        first: float | None = None
        last = 0.0
        tail: list[bytes] = []
        clean = False
        itl = m.itl.labels(model)
        translator = a.endpoint.dialect.stream(route, model)
        try:
            await out.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    if translator is not None:
                        chunk = translator.feed(chunk)
                        if not chunk:
                            continue
                    if _has_content(chunk):
                        now = time.perf_counter()
                        if first is None:
                            first = now
                            m.ttft.labels(model).observe(now - t_start)
                        else:
                            itl.observe(now - last)
                        last = now
                    tail.append(chunk)
                    if len(tail) > 4:
                        del tail[0]
                    await out.write(chunk)
                if translator is not None:
                    await out.write(translator.end())
                clean = True
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._failed(a.endpoint, model, "stream_broken")
                await out.write(sse_error_event(
                    f"the stream from {a.endpoint.id} broke off: {exc}", code="upstream_stream_broken"))
            await out.write_eof()
        except (ConnectionResetError, asyncio.CancelledError) as exc:
            # the client went away: closing the upstream connection cancels the generation
            m.client_disconnects.labels(model).inc()
            upstream.close()
            a.release()
            m.requests.labels(model, route, "499").inc()
            if isinstance(exc, asyncio.CancelledError):
                raise
            return out
        if clean:
            upstream.release()
        else:
            upstream.close()
        a.release()
        m.requests.labels(model, route, "200" if clean else "502").inc()
        m.e2e.labels(model).observe(time.perf_counter() - t_start)
        self._count_usage(model, b"".join(tail))
        return out


async def _read_quietly(resp: aiohttp.ClientResponse) -> bytes:
    try:
        return await resp.read()
    except (aiohttp.ClientError, TimeoutError):
        return b""
