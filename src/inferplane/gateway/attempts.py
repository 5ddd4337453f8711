"""The attempt loop: pick a replica, try once, judge the outcome; until answered or out of tries.

Hot path. Per request: one pooled upstream connection, the canonical body bytes sent as
they came (re-encoded only when an attempt must change the model name or ask for usage),
the answer relayed by ``gateway/relay.py``.

Failure semantics:
- Before any byte went to the client: a stale pooled connection is resent on a fresh
  one invisibly; connect errors, timeouts, a frozen replica (no first byte within
  ``probe_after_s`` and no answer to a liveness probe), 5xx, and a 2xx whose body is not
  valid JSON (or too large) are retried on another replica (up to ``max_attempts``); then
  the client gets 502/503/504 (503 and 429 with Retry-After), in its surface's shape.
- A failure the request caused is not the replica's: a 4xx, a 5xx whose body says so, or
  the same 5xx from a second replica goes back as a 4xx with the runtime's reason, is not
  retried, and is not counted against any replica (so no client can open a breaker).
  A 5xx is counted only once the next attempt shows it was not the request.
- An upstream that refuses the gateway's credentials (401/403) is misconfigured, not down:
  the request moves on to another replica, the refusal is not counted against the replica
  (a breaker would only flap it), it is logged once per endpoint, and a client no replica
  answered gets a 502 naming the endpoint and its ``api_key_env`` (never a 401: its own key
  was fine).
- After bytes went out: no retry. A broken, stalled (``stream_idle_timeout_s``, or two
  failed probes in a row, every ``probe_after_s`` of silence), unterminated or untranslatable
  upstream stream ends with an error event, and its upstream connection is closed (freeing
  the runtime's slot).
- The client going away cancels the handler; the upstream connection is closed (every
  upstream response is closed in a ``finally`` unless it was released), which cancels the generation.
- Every upstream failure and every breaker change is logged at WARNING; every attempt is
  reported to the observers once its outcome (and, for a 5xx, its blame) is known.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

import orjson

from inferplane.gateway.exchange import Exchange
from inferplane.gateway.faults import (
    REFUSED_CREDENTIALS,
    UpstreamFault,
    describe,
    refused_credentials,
)
from inferplane.gateway.liveness import Liveness
from inferplane.gateway.relay import Answered, Failure, Relay
from inferplane.gateway.surfaces.base import Rejection
from inferplane.gateway.upstream import (
    ConnectFailed,
    StaleConnection,
    UpstreamError,
    UpstreamPool,
    UpstreamResponse,
    UpstreamTimeout,
)
from inferplane.observability.observer import Attempt, Observers
from inferplane.protocol.routes import Route
from inferplane.routing.held import NoReplica
from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.routing.router import Choice, Router
from inferplane.runtimes.base import UnsupportedRequest
from inferplane.runtimes.registry import get_adapter

__all__ = ["Attempts"]

log = logging.getLogger(__name__)

_CHAT = Route.CHAT
"""A module name for the route most requests take (``Route.CHAT`` is a lookup through ``EnumType``)."""

_REPLICA_GONE = frozenset({"connect", "disconnect", "frozen"})
"""Failure kinds after which a replica may simply be down (restarting), not broken."""

class Attempts:
    """Serves validated requests through replicas chosen by the router."""

    def __init__(self, *, pool: UpstreamPool, registry: EndpointRegistry, router: Router, observers: Observers,
                 first_byte_timeout_s: float, probe_after_s: float = 3.0, probe_timeout_s: float = 3.0,
                 stream_idle_timeout_s: float = 60.0) -> None:
        self.pool = pool
        self.registry = registry
        self.router = router
        self.observers = observers
        self.first_byte_timeout_s = first_byte_timeout_s
        self.probe_after_s = probe_after_s
        self._first_wait_s = min(probe_after_s, first_byte_timeout_s)
        """The wait for a response status before the first liveness probe (most answers come within it)."""
        self.liveness = Liveness(pool, registry, timeout_s=probe_timeout_s)
        self.relay = Relay(liveness=self.liveness, failed=self._failed, probe_after_s=probe_after_s,
                           stream_idle_timeout_s=stream_idle_timeout_s)
        self._usage_capable: dict[str, bool] = {}
        self._trace_capable: dict[str, bool] = {}
        self._refusals_logged: set[tuple[str, int, str]] = set()

    async def run(self, x: Exchange, t_start: float) -> None:
        """Answer ``x`` from a replica and report it finished; raises ``Rejection`` when none
        could answer (the pipeline renders it), never an upstream exception. ``t_start``:
        ``time.perf_counter()`` now (the first attempt's start)."""
        retry = x.req.served.config.retry
        info = x.info
        tried: set[str] = set()
        last: Failure | None = None
        unproven: list[tuple[Endpoint, UpstreamFault, Attempt]] = []  # 5xx answers not yet blamed on a replica
        try:
            for n in range(retry.max_attempts):
                if n:
                    if retry.backoff_s:
                        await asyncio.sleep(retry.backoff_s * 2 ** (n - 1))
                    t_start = time.perf_counter()
                choice = self.router.pick(info, tried)
                if choice is None and not tried:  # nothing ready, or every replica full: hold the request
                    t0 = time.perf_counter()
                    try:
                        choice = await self.router.wait_pick(info, tried)
                    except NoReplica as exc:
                        raise Rejection(503, str(exc), code=exc.code,
                                        headers=[("Retry-After", exc.retry_after_header)]) from exc
                    finally:
                        x.queued_s += time.perf_counter() - t0
                if choice is None:
                    break
                ep = choice.endpoint
                x.retries = n  # each try before this one failed (and is in ``tried``)
                try:
                    answered = await self._once(x, choice, tried, t_start)
                except Failure as exc:
                    self._failed(ep, exc.kind, str(exc))
                    self._report(x, choice, exc.kind, t_start, None, str(exc))
                    tried.add(ep.id)
                    last = exc
                    continue
                if answered is None:  # a stream, relayed and accounted
                    return
                if answered.status in REFUSED_CREDENTIALS:
                    last = self._refused(x, choice, answered.status, t_start)
                    tried.add(ep.id)
                    continue
                fault = None
                if answered.status >= 500:
                    fault = describe(answered.status, answered.body, runtime=ep.runtime, managed=ep.managed)
                    if not fault.request_fault and any(f.signature == fault.signature for _, f, _ in unproven):
                        fault = describe(answered.status, answered.body, runtime=ep.runtime, managed=ep.managed,
                                         repeated=True)
                    if not fault.request_fault:
                        msg = f"{ep.id} answered {answered.status}: {fault.message[:300]}"
                        unproven.append((ep, fault, self._attempt(choice, "status_5xx", t_start, answered.status, msg)))
                        tried.add(ep.id)
                        last = Failure("status_5xx", msg)
                        continue
                if answered.status >= 400:  # a 5xx before it, for this request, was most likely the request too
                    for _, _, a in unproven:
                        x.observers.attempt(x, _excused(a))
                    unproven.clear()
                self.router.succeeded(choice)
                if x.observers.wants_ok_attempts:  # else no observer would read it: not even made
                    self._report(x, choice, "ok", t_start, answered.status)
                x.endpoint_id = ep.id  # self._answering(x, choice), inlined on the path most requests take
                x.runtime = ep.runtime
                x.headers += (("x-inferplane-endpoint", ep.id), ("x-inferplane-policy", choice.policy))
                if choice.fallback:
                    x.headers.append(("x-inferplane-fallback", ep.deployment))
                if answered.status >= 400:
                    if fault is None:
                        fault = describe(answered.status, answered.body, runtime=ep.runtime, managed=ep.managed)
                    raise Rejection(fault.status, fault.message, body=fault.body, headers=answered.passed)
                usage = self.relay.send(x, answered)
                self.router.observed(choice, info, None if usage is None else usage.cached_tokens)
                return
        finally:
            for ep, fault, a in unproven:  # not the request's fault after all: these replicas failed
                self._failed(ep, "status_5xx", fault.message[:300])
                x.observers.attempt(x, a)
        raise self._gave_up(x, tried, last)

    async def _once(self, x: Exchange, choice: Choice, tried: set[str], t_start: float) -> Answered | None:
        """Try one replica: the whole answer (not yet sent), or None once a stream was relayed
        (and accounted). Raises Failure (another replica may do better) or Rejection."""
        ep = choice.endpoint
        req = x.req
        dialect = ep.dialect
        data, body = req.data, req.body
        upstream_name = ep.upstream_model or ep.deployment  # a fallback serves it under its own name
        if upstream_name != x.model:
            data = {**data, "model": upstream_name}
        strip_usage = req.stream and not req.include_usage and self._streams_usage(ep.runtime)
        if strip_usage:  # ask for usage anyway (for the token metrics); the client won't see it
            if data is req.data and "stream_options" not in data:
                body = _asking_usage(body)
            else:
                data = {**data, "stream_options": {**(data.get("stream_options") or {}), "include_usage": True}}
        if data is not req.data:  # re-encoding the parsed request beats any byte search (docs/gateway.md)
            body = orjson.dumps(data)
        if dialect.passthrough:
            path = dialect.chat_path if req.route is _CHAT else dialect.path(req.route)  # most requests: no call
        else:
            try:
                path, body = dialect.request(req.route, data, body)
            except UnsupportedRequest as exc:
                raise Rejection(400, f"{ep.runtime}: {exc}", param=exc.param, code="unsupported_parameter") from exc
        tp = x.upstream_traceparent  # set only when tracing is on
        extra = b"traceparent: %s\r\n" % tp.encode() if tp is not None and self._traces(ep.runtime) else b""
        sent = self.pool.post_idle(ep.url, path, body, extra)  # most requests: on a pooled connection, at once
        # counted in flight after the write, which nothing waited for since the pick: another request
        # picks with this one counted all the same, and the upstream has it ~5k instructions sooner
        try:
            release = self.registry.acquire(ep)
        except BaseException:
            if sent is not None:  # written already: close it, or the runtime generates for nobody
                sent.close()
            raise
        try:
            resp = await self._open(x, choice, path, body, tried, extra, sent)
            try:  # what ``with resp`` does, less its __enter__/__exit__ calls (1.6k instructions a request)
                if not (req.stream and resp.status == 200):
                    return await self.relay.read(resp, ep, x)
                if dialect.passthrough and not resp.content_type.startswith("text/event-stream"):
                    await self.relay.read(resp, ep, x)  # the check raises for a non-JSON body
                    raise Failure("invalid_response", f"{ep.id} answered a stream request with "
                                                      f"{resp.content_type}, not an event stream")
                self.router.succeeded(choice)
                self._answering(x, choice)
                usage = await self.relay.stream(
                    x, resp, ep, strip_usage=strip_usage,
                    attempt=lambda outcome, detail: self._report(x, choice, outcome, t_start, 200, detail))
                self.router.observed(choice, x.info, None if usage is None else usage.cached_tokens)
                return None
            finally:
                resp.close()  # nothing left to do once released (read to its end): the connection is pooled
        finally:
            release()

    async def _open(self, x: Exchange, choice: Choice, path: str, body: bytes, tried: set[str], extra: bytes,
                    sent: UpstreamResponse | None) -> UpstreamResponse:
        """Send the request (unless ``sent``: already written on a pooled connection); return once
        the response status arrived. Raises Failure."""
        ep = choice.endpoint
        for _ in range(3):
            if sent is not None:
                resp, sent = sent, None
            else:
                try:
                    resp = await self.pool.post(ep.url, path, body, fresh=True, extra_headers=extra)
                except ConnectFailed as exc:
                    raise Failure("connect", f"cannot reach {ep.id}: {exc}") from exc
            try:
                try:
                    await resp.headers(self._first_wait_s)  # most answers: the status within a probe period
                except UpstreamTimeout:
                    await self._first_byte(resp, ep, tried, self._first_wait_s)
                return resp
            except StaleConnection:
                # A kept-alive connection the server had already closed: the request got no
                # answer. Resend it on a fresh connection.
                resp.close()
                self._report(x, choice, "stale_connection", time.perf_counter())
            except UpstreamError as exc:
                resp.close()
                raise Failure("disconnect", f"{ep.id} failed: {exc}") from exc
            except BaseException:
                resp.close()
                raise
        raise Failure("disconnect", f"{ep.id} kept closing connections before answering")

    async def _first_byte(self, resp: UpstreamResponse, ep: Endpoint, tried: set[str], waited: float) -> None:
        """Wait on for the response status after ``waited`` seconds without it (``_open`` waits
        the first ``_first_wait_s`` itself); a probe-aware deadline (docs/reliability.md).

        Every ``probe_after_s`` without an answer, the replica is probed: a replica that
        answers is busy (a long prompt) and the wait goes on, up to ``first_byte_timeout_s``;
        one that does not is frozen, and the request moves on if another replica can take it.
        """
        total = self.first_byte_timeout_s
        while waited < total:
            if self._another_ready(ep, tried) and not await self.liveness.alive(ep):
                raise Failure("frozen", f"{ep.id} sent no response for {waited:.0f} s and does not answer its "
                                        "health probe")
            step = min(self.probe_after_s, total - waited)
            try:
                await resp.headers(step)
                return
            except UpstreamTimeout:
                waited += step
        raise Failure("timeout", f"{ep.id} sent no response within {total:.0f} s")

    def _another_ready(self, ep: Endpoint, tried: set[str]) -> bool:
        return any(e is not ep and e.id not in tried for e in self.registry.ready(ep.deployment))

    def _answering(self, x: Exchange, choice: Choice) -> None:
        """This replica's answer goes to the client: say which one, in the response headers."""
        ep = choice.endpoint
        x.endpoint_id = ep.id
        x.runtime = ep.runtime
        x.headers += (("x-inferplane-endpoint", ep.id), ("x-inferplane-policy", choice.policy))
        if choice.fallback:
            x.headers.append(("x-inferplane-fallback", ep.deployment))

    def _gave_up(self, x: Exchange, tried: set[str], last: Failure | None) -> Rejection:
        model = x.model or ""
        if last is None:
            return Rejection(503, f"no ready replica for model {model!r}; try again shortly", code="model_not_ready",
                             headers=[("Retry-After", str(self._retry_after(model)))])
        if last.kind in _REPLICA_GONE and not self.registry.ready(model):
            # the replica died (or froze) under the request and none is left: the model is not
            # ready right now, and the client may try again once a replica is back
            return Rejection(503, f"no ready replica for model {model!r} after {len(tried)} attempt(s) ({last}); "
                                  "try again shortly", code="model_not_ready",
                             headers=[("Retry-After", str(self._retry_after(model)))])
        return Rejection(504 if last.kind == "timeout" else 502,
                         f"upstream failed after {len(tried)} attempt(s): {last}", code="upstream_" + last.kind)

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

    def _traces(self, runtime: str) -> bool:
        """Whether the runtime continues a W3C trace (its adapter's ``capabilities().traces``)."""
        known = self._trace_capable.get(runtime)
        if known is None:
            known = self._trace_capable[runtime] = get_adapter(runtime).capabilities().traces
        return known

    def _refused(self, x: Exchange, choice: Choice, status: int, t_start: float) -> Failure:
        """The replica refused the gateway's key: report and log it (once per endpoint and key
        source). It answered, so for its breaker this is an answer like any below 500 (a
        half-open breaker's trial is settled, not left out forever), not a failure."""
        ep = choice.endpoint
        self.router.succeeded(choice)
        source = self.pool.access(ep.url).key_source
        msg = refused_credentials(ep.id, ep.url, status, source)
        self._report(x, choice, "credentials_refused", t_start, status, msg)
        if (ep.id, status, source) not in self._refusals_logged:
            self._refusals_logged.add((ep.id, status, source))
            log.warning("%s", msg)
        return Failure("credentials", msg)

    def _failed(self, ep: Endpoint, kind: str, detail: str) -> None:
        log.warning("upstream %s (%s) failed: %s: %s", ep.id, ep.url, kind, detail)
        self.router.failed(ep)

    @staticmethod
    def _attempt(choice: Choice, outcome: str, t_start: float, status: int | None = None,
                 detail: str = "") -> Attempt:
        ep = choice.endpoint
        blocks = choice.predicted_cached_blocks
        return Attempt(ep.id, ep.deployment, ep.runtime, choice.policy,
                       "" if blocks is None else f"prefix {blocks} blocks", outcome, t_start, time.perf_counter(),
                       status, detail)

    @staticmethod
    def _report(x: Exchange, choice: Choice, outcome: str, t_start: float, status: int | None = None,
                detail: str = "") -> None:
        ep = choice.endpoint
        blocks = choice.predicted_cached_blocks
        x.observers.attempt(x, Attempt(ep.id, ep.deployment, ep.runtime, choice.policy,
                                           "" if blocks is None else f"prefix {blocks} blocks", outcome, t_start,
                                           time.perf_counter(), status, detail))


_ASK_USAGE = b'"stream_options":{"include_usage":true},'


def _asking_usage(body: bytes) -> bytes:
    """``body``, a JSON object with members and no ``stream_options``, asking for usage: the
    member written in after its opening brace (no search: JSON whitespace holds no ``{``). Its
    bytes copied rather than the request re-encoded (two dict copies and ``orjson.dumps``):
    1.3k instructions fewer for a short request (``stream_phases.py``), and for a long prompt a
    copy of its bytes instead of an encode."""
    i = body.find(b"{") + 1
    return b"".join((body[:i], _ASK_USAGE, body[i:]))


def _excused(a: Attempt) -> Attempt:
    return Attempt(a.endpoint_id, a.deployment, a.runtime, a.policy, a.reason, "request_fault", a.t_start, a.t_end,
                   a.status, a.detail)
