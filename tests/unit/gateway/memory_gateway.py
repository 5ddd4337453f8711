"""A Gateway whose upstreams answer in-process (no sockets), and a client without sockets either.

``memory_gateway(app, n)`` builds deployment ``m`` with ``n`` endpoints (``http://up-<i>:80``),
all ready, their connections made by a ``MemoryConnector(app)``; ``call(gw, body)`` sends one
request through ``gw.handle`` and returns the raw HTTP response the client would read, parsed.
``Recorder`` is a request observer that keeps every event, for asserting what observers see.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httptools
import orjson

from inferplane.config import DeploymentConfig, GatewayConfig
from inferplane.config.models import BreakerConfig, ReplicaTarget, RetryConfig
from inferplane.gateway.app import Gateway
from inferplane.gateway.http_limits import HttpLimits, ServerState
from inferplane.gateway.http_messages import Request, Responder
from inferplane.gateway.memory_transport import App, MemoryConnector
from inferplane.gateway.surfaces import Surface
from inferplane.observability.observer import Attempt, Outcome, RequestRecord
from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.runtimes.registry import get_adapter

__all__ = ["Recorder", "Reply", "call", "chat", "memory_gateway", "sse"]


@dataclass
class Recorder:
    """Keeps every observer event as (event, record, payload)."""

    events: list[tuple[str, RequestRecord, Any]] = field(default_factory=list)

    def started(self, rec: RequestRecord) -> None:
        self.events.append(("started", rec, None))

    def attempt(self, rec: RequestRecord, attempt: Attempt) -> None:
        self.events.append(("attempt", rec, attempt))

    def first_token(self, rec: RequestRecord, t: float) -> None:
        self.events.append(("first_token", rec, t))

    def finished(self, rec: RequestRecord, outcome: Outcome) -> None:
        self.events.append(("finished", rec, outcome))

    def names(self) -> list[str]:
        return [e for e, _, _ in self.events]

    def attempts(self) -> list[str]:
        return [a.outcome for e, _, a in self.events if e == "attempt"]

    def outcome(self) -> Outcome:
        done = [o for e, _, o in self.events if e == "finished"]
        assert len(done) == 1, self.names()
        return done[0]


def memory_gateway(app: App, n: int = 1, *, runtime: str = "openai", max_attempts: int = 3,
                   refuse: tuple[int, ...] = (), surfaces: tuple[Surface, ...] | None = None,
                   recorder: Recorder | None = None, **gateway: Any) -> tuple[Gateway, MemoryConnector, Recorder]:
    """Deployment ``m`` with ``n`` endpoints; connections to endpoints whose index is in ``refuse`` fail."""
    urls = [f"http://up-{i}:80" for i in range(n)]
    dep = DeploymentConfig(name="m", runtime=runtime, replicas=0, policy="round_robin",
                           endpoints=tuple(ReplicaTarget(url=u) for u in urls),
                           retry=RetryConfig(max_attempts=max_attempts, backoff_s=0),
                           breaker=BreakerConfig(failure_threshold=5, open_s=10))
    registry = EndpointRegistry()
    connector = MemoryConnector(app, refuse=[(f"up-{i}", 80) for i in refuse])
    recorder = Recorder() if recorder is None else recorder
    gw = Gateway(GatewayConfig(port=0, **gateway), (dep,), registry, connect=connector, observers=(recorder,),
                 surfaces=surfaces)
    adapter = get_adapter(runtime)
    for u in urls:
        ep = Endpoint(id=registry.new_id("m"), deployment="m", runtime=runtime, url=u,
                      dialect=adapter.dialect_for(dep), capacity=4, managed=False)
        registry.add(ep)
        registry.set_ready(ep, True)
    return gw, connector, recorder


class _Wire:
    """The HTTP server side a Responder writes to, in memory."""

    def __init__(self) -> None:
        self.state = ServerState(HttpLimits())
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("client disconnected")
        self.data += data

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("client disconnected")
        await asyncio.sleep(0)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def _parse(raw: bytes) -> Reply:
    out: dict[str, Any] = {"headers": {}, "body": bytearray()}

    class P:
        def on_header(self, k: bytes, v: bytes) -> None:
            out["headers"][k.decode().lower()] = v.decode()

        def on_body(self, b: bytes) -> None:
            out["body"] += b

    p = httptools.HttpResponseParser(P())
    p.feed_data(raw)
    return Reply(p.get_status_code(), out["headers"], bytes(out["body"]))


async def call(gw: Gateway, body: bytes | dict[str, Any], path: str = "/v1/chat/completions",
               headers: dict[str, str] | None = None, method: str = "POST") -> Reply:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    wire = _Wire()
    await gw.handle(Request(method, path, "", headers or {}, raw, True), Responder(wire, True))  # type: ignore[arg-type]
    return _parse(bytes(wire.data))


def chat(stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream, **extra}


def sse(delta: dict[str, Any] | None = None, finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    body: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                            "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"
