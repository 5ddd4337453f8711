"""The one fake OpenAI-compatible runtime, for tests, benchmarks and demos.

    async with FakeOpenAIServer(ttft_s=0.2, itl_s=0.02, output_len=16) as srv:        # synthetic
        ...  # POST f"{srv.url}/v1/chat/completions"
    FakeOpenAIServer(recording="tests/fixtures/vllm/live", served_model="smollm2")   # a replay
    FakeOpenAIServer(fault="break_stream", text=("hel", "lo"))                        # a fault

Two sources of answers, one server:

- **synthetic** (no ``recording``): streaming responses send a role-only chunk (immediately),
  then after ``ttft_s`` the first content chunk, then one content chunk every ``itl_s``; each
  carries ``tokens_per_chunk`` tokens (the word ``"tok "``, which the client estimate counts as
  one token) or, with ``text``, exactly those pieces; then a usage chunk when the request asked
  for ``stream_options.include_usage`` and ``usage`` is on, then ``[DONE]``. Output length is
  ``output_len`` or, when ``None``, the request's ``max_tokens``. ``reasoning_tokens`` leading
  tokens go out as ``reasoning_content``.
- **recorded** (``recording`` = a folder, see ``fake_recording``): the runtime's own bodies, stream
  bytes, health semantics, errors and metrics, with the recorded timing (TTFT and every
  inter-chunk delay, times ``time_scale``) where the recording has it. The ``choices: []`` usage
  chunk is sent only when the request asked for it. Runtimes that check ``model`` answer another
  name than ``served_model`` with their recorded error; ``max_tokens >= 9000`` gets the recorded
  max-tokens error. For ``loading_s`` after start, health answers the recorded loading status.

Faults, for either source (``fault``): ``status_500`` (every completion), ``slow`` (1 s before
answering), ``break_stream`` (abort the connection after two content chunks),
``close_after_stream`` (a kept-alive connection that carried a stream is dropped, unanswered, when
its next request arrives - as llama.cpp's server was seen doing); ``fail_every=k`` answers every
k-th request with HTTP 500.

Access, as a runtime started with a key or behind TLS: ``api_key`` makes every ``/v1/*`` path
answer 401 ``{"error": "Unauthorized"}`` unless ``Authorization: Bearer <key>`` is sent - vLLM's
``--api-key`` middleware (vllm/entrypoints/openai/api_server.py: /v1 paths only, exact compare);
``key_free_paths`` leaves some of them open, as llama-server leaves ``/health``, ``/v1/health``,
``/models``, ``/v1/models`` and ``/api/tags`` (its ``public_endpoints``, ggml-org/llama.cpp@aa6192d
tools/server/server-http.cpp ``middleware_validate_api_key``), so that a wrong key passes the
model-list health check and is refused only on completions;
``ssl_context`` (a server context) serves HTTPS. Runnable as a process: ``python -m inferplane.bench.fake_server --port
8000 --ttft-s 0.2`` (prints ``READY <url>``); ``--recording DIR``, ``--fault MODE``,
``--api-key-env NAME``, ``--tls-cert FILE --tls-key FILE`` likewise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from inferplane.bench.fake_recording import Recording, load_recording

__all__ = ["FAULTS", "FakeOpenAIServer", "FakeServerConfig", "main"]

FAULTS = ("none", "status_500", "slow", "break_stream", "close_after_stream")
MAX_TOKENS_TRIGGER = 9000
"""``max_tokens`` at or above this gets a recording's max-tokens error (beyond any context here)."""
METRICS_PATH = {"trtllm": "/prometheus/metrics"}
"""Where a runtime serves Prometheus text when it is not ``/metrics``."""


@dataclass(frozen=True, slots=True)
class FakeServerConfig:
    """Timing and shape of the fake responses (see module docstring)."""

    ttft_s: float = 0.05
    itl_s: float = 0.01
    tokens_per_chunk: int = 1
    output_len: int | None = 16
    reasoning_tokens: int = 0
    usage: bool = True
    fail_every: int = 0
    model: str = "fake-model"
    text: tuple[str, ...] | None = None
    """Synthetic: stream exactly these content pieces (output_len is then their count)."""
    recording: str | None = None
    """A recording folder to replay instead of synthetic answers."""
    served_model: str | None = None
    """Replay: the name the runtime serves (None: accept any)."""
    time_scale: float = 1.0
    """Replay: multiplies the recorded delays (0 replays as fast as possible)."""
    loading_s: float = 0.0
    """Replay: answer the recorded loading status on health for this long after start."""
    metrics_port: int | None = None
    """Replay: also serve the metrics on this port (MAX serves them apart from its API)."""
    fault: str = "none"
    api_key: str | None = field(default=None, repr=False)
    """Require ``Authorization: Bearer <api_key>`` on /v1/* (as vLLM's --api-key); never printed."""
    key_free_paths: tuple[str, ...] = ()
    """Paths under /v1 answered without the key (llama-server: ``("/v1/models", "/v1/health")``)."""

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"fault {self.fault!r}: expected one of {', '.join(FAULTS)}")


class FakeOpenAIServer:
    """Serves on 127.0.0.1: ``/v1/chat/completions``, ``/v1/completions`` (synthetic), ``/v1/models``,
    ``/health`` and ``/ready`` (synthetic) or the recording's health path, and its metrics.

    Use as ``async with`` (runs on the current loop) or ``with server.in_thread()`` (own loop in a
    daemon thread). ``requests_seen`` counts requests; not thread-safe to read while running.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None,
                 **config: object) -> None:
        self.ssl_context = ssl_context
        if isinstance(config.get("text"), list):
            config["text"] = tuple(config["text"])  # type: ignore[arg-type]
        self.config = FakeServerConfig(**config)  # type: ignore[arg-type]
        self.host = host
        self.port = port
        self.requests_seen = 0
        self.headers_seen: list[dict[str, str]] = []
        """The headers of each completion request, in arrival order (lower-case names)."""
        self.recording: Recording | None = (
            load_recording(self.config.recording) if self.config.recording else None
        )
        self._ready_at = 0.0
        self._streamed: set[object] = set()
        self._runners: list[web.AppRunner] = []

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:43123`` (append ``/v1/...``)."""
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.port}"

    def app(self) -> web.Application:
        """The aiohttp application (routes depend on the source; see the class docstring)."""
        app = web.Application(middlewares=[self._auth] if self.config.api_key else [])
        r = app.router
        r.add_post("/v1/chat/completions", self._chat)
        r.add_post("/v1/completions", self._completions)
        r.add_get("/v1/models", self._models)
        rec = self.recording
        if rec is None:
            r.add_get("/ready", self._ready)
            r.add_get("/health", self._health_ok)
            return app
        ollama = (rec.folder / "api_chat.json").exists()
        if rec.health_path != "/v1/models" and not ollama:  # MLC: readiness is the model list
            r.add_get(rec.health_path, self._health)
        if rec.metrics is not None:
            path = METRICS_PATH.get(rec.runtime, "/metrics")
            r.add_get(path, self._metrics)
            if path != "/metrics":  # TensorRT-LLM: /metrics is JSON iteration stats
                r.add_get("/metrics", _empty_json_list)
        if ollama:
            from inferplane.bench.fake_ollama import add_ollama_routes

            add_ollama_routes(app, rec)
        return app

    async def __aenter__(self) -> FakeOpenAIServer:
        self._ready_at = time.monotonic() + self.config.loading_s
        self.port = await self._serve(self.app(), self.port)
        if self.config.metrics_port is not None and self.recording is not None:
            metrics = web.Application()
            metrics.router.add_get("/metrics", self._metrics)
            await self._serve(metrics, self.config.metrics_port)
        return self

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/v1") and request.path not in self.config.key_free_paths and \
                request.headers.get("Authorization") != f"Bearer {self.config.api_key}":
            return web.json_response({"error": "Unauthorized"}, status=401)
        return await handler(request)

    async def _serve(self, app: web.Application, port: int) -> int:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, self.host, port, backlog=4096, ssl_context=self.ssl_context)
        await site.start()
        server = site._server
        if port == 0 and server is not None:
            port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return port

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[FakeOpenAIServer]:
        """Run on a private event loop in a daemon thread for the duration of the ``with``."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        stop: asyncio.Event | None = None

        async def serve() -> None:
            nonlocal stop
            stop = asyncio.Event()
            async with self:
                started.set()
                await stop.wait()

        thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
        thread.start()
        if not started.wait(10):
            raise RuntimeError("fake server did not start")
        try:
            yield self
        finally:
            assert stop is not None
            loop.call_soon_threadsafe(stop.set)
            thread.join(10)
            loop.close()

    # -- health, models, metrics --------------------------------------------------------------

    async def _ready(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    async def _health_ok(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _health(self, request: web.Request) -> web.Response:
        rec = self.recording
        assert rec is not None
        if rec.loading_status and time.monotonic() < self._ready_at:
            return web.Response(status=rec.loading_status)
        ctype = "application/json" if rec.ready_json else "text/plain"
        return web.Response(status=rec.ready_status, body=rec.ready_body, content_type=ctype)

    async def _models(self, request: web.Request) -> web.Response:
        if self.recording is not None:
            body = self.recording.models
            if self.config.served_model:
                body = self.recording.with_model(body, self.config.served_model)
            return web.Response(body=body, content_type="application/json")
        return web.json_response(
            {"object": "list", "data": [{"id": self.config.model, "object": "model", "owned_by": "fake"}]}
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        assert self.recording is not None and self.recording.metrics is not None
        return web.Response(body=self.recording.metrics, content_type="text/plain")

    # -- completions ----------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, chat=True)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        if self.recording is not None:
            return web.json_response({"error": {"message": "not recorded", "type": "not_found"}}, status=404)
        return await self._complete(request, chat=False)

    async def _complete(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        cfg = self.config
        self.requests_seen += 1
        self.headers_seen.append({k.lower(): v for k, v in request.headers.items()})
        body = orjson.loads(await request.read())
        if request.transport in self._streamed:  # close_after_stream: drop the reused connection
            self._streamed.discard(request.transport)
            request.transport.abort()  # type: ignore[union-attr]
            raise asyncio.CancelledError
        if cfg.fault == "slow":
            await asyncio.sleep(1.0)
        if cfg.fault == "status_500" or (cfg.fail_every and self.requests_seen % cfg.fail_every == 0):
            return web.json_response(
                {"error": {"message": "injected failure", "type": "server_error"}}, status=500
            )
        if self.recording is not None:
            return await self._replay(request, body, self.recording)
        return await self._synthetic(request, body, chat=chat)

    async def _replay(self, request: web.Request, body: dict, rec: Recording) -> web.StreamResponse:
        cfg = self.config
        model = str(body.get("model", ""))
        wrong_model = rec.checks_model and cfg.served_model is not None and model != cfg.served_model
        trigger = "unknown_model" if wrong_model else None
        if (body.get("max_tokens") or 0) >= MAX_TOKENS_TRIGGER:
            trigger = "max_tokens"
        if trigger and trigger in rec.errors:
            err = rec.errors[trigger]
            return web.Response(status=err.status, body=err.body, content_type="application/json")
        if not body.get("stream"):
            await asyncio.sleep(rec.chat_s * cfg.time_scale)
            return web.Response(body=rec.with_model(rec.chat, model), content_type="application/json")
        want_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        start, at, contents = time.monotonic(), 0.0, 0
        for event, delay in zip(rec.stream, rec.chunk_delays_s, strict=True):
            at += delay * cfg.time_scale
            if b'"choices":[]' in event and not want_usage:
                continue
            await asyncio.sleep(max(0.0, start + at - time.monotonic()))  # absolute deadlines
            await resp.write(rec.with_model(event, model))
            contents += b'"content"' in event
            if cfg.fault == "break_stream" and contents >= 2:
                return self._abort(request, resp)
        await resp.write_eof()
        self._after_stream(request)
        return resp

    async def _synthetic(self, request: web.Request, body: dict, *, chat: bool) -> web.StreamResponse:
        cfg = self.config
        pieces = list(cfg.text) if cfg.text is not None else None
        n = len(pieces) if pieces is not None else (
            cfg.output_len if cfg.output_len is not None else int(body.get("max_tokens") or 16))
        prompt_tokens = len(orjson.dumps(body.get("messages") or body.get("prompt") or "")) // 4
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n}
        per_chunk = 1 if pieces is not None else cfg.tokens_per_chunk
        if not body.get("stream"):
            await asyncio.sleep(cfg.ttft_s + cfg.itl_s * max(0, -(-n // per_chunk) - 1))
            text = "".join(pieces) if pieces is not None else "tok " * n
            whole = ({"index": 0, "message": {"role": "assistant", "content": text},
                      "finish_reason": "stop" if pieces is not None else "length"}
                     if chat else {"index": 0, "text": text, "finish_reason": "length"})
            out: dict[str, object] = {"id": "fake", "object": "chat.completion", "model": cfg.model,
                                      "choices": [whole]}
            if cfg.usage:
                out["usage"] = usage
            return web.Response(body=orjson.dumps(out), content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        if chat:
            await resp.write(_event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}))
        start = time.monotonic()
        sent = k = 0
        while sent < n:
            # Sleep to absolute deadlines so delays do not accumulate.
            await asyncio.sleep(max(0.0, start + cfg.ttft_s + k * cfg.itl_s - time.monotonic()))
            m = min(per_chunk, n - sent)
            words = pieces[sent] if pieces is not None else "tok " * m
            choice: dict[str, object]
            if chat:
                delta = {"reasoning_content": words} if sent < cfg.reasoning_tokens else {"content": words}
                choice = {"index": 0, "delta": delta}
            else:
                choice = {"index": 0, "text": words}
            await resp.write(_event({"choices": [choice]}))
            sent += m
            k += 1
            if cfg.fault == "break_stream" and k >= 2:
                return self._abort(request, resp)
        if pieces is not None and chat:
            await resp.write(_event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        want_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if cfg.usage and want_usage:
            await resp.write(_event({"choices": [], "usage": usage}))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        self._after_stream(request)
        return resp

    def _abort(self, request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()
        return resp

    def _after_stream(self, request: web.Request) -> None:
        if self.config.fault == "close_after_stream":
            self._streamed.add(request.transport)


async def _empty_json_list(_request: web.Request) -> web.Response:
    return web.json_response([])


def _event(obj: dict[str, object]) -> bytes:
    obj.setdefault("object", "chat.completion.chunk")
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def main(argv: list[str] | None = None) -> None:
    """Run the fake server until interrupted (prints ``READY <url>`` once listening)."""
    ap = argparse.ArgumentParser(prog="python -m inferplane.bench.fake_server")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ttft-s", type=float, default=0.05)
    ap.add_argument("--itl-s", type=float, default=0.01)
    ap.add_argument("--tokens-per-chunk", type=int, default=1)
    ap.add_argument("--output-len", type=int, default=16)
    ap.add_argument("--no-usage", action="store_true")
    ap.add_argument("--fail-every", type=int, default=0)
    ap.add_argument("--reasoning-tokens", type=int, default=0)
    ap.add_argument("--model", default="fake-model")
    ap.add_argument("--recording", help="replay this recording folder (e.g. tests/fixtures/vllm/live)")
    ap.add_argument("--served-model", help="replay: the name the runtime serves")
    ap.add_argument("--time-scale", type=float, default=1.0, help="replay: multiply recorded delays")
    ap.add_argument("--fault", choices=FAULTS, default="none")
    ap.add_argument("--api-key-env", help="require 'Authorization: Bearer <the key in this variable>' on /v1/*")
    ap.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (and --tls-key)")
    ap.add_argument("--tls-key", help="the PEM key of --tls-cert")
    args = ap.parse_args(argv)
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)

    async def serve() -> None:
        cfg = {
            "ttft_s": args.ttft_s, "itl_s": args.itl_s, "tokens_per_chunk": args.tokens_per_chunk,
            "fail_every": args.fail_every, "reasoning_tokens": args.reasoning_tokens, "model": args.model,
            "recording": args.recording, "served_model": args.served_model, "time_scale": args.time_scale,
            "fault": args.fault, "api_key": os.environ[args.api_key_env] if args.api_key_env else None,
        }
        async with FakeOpenAIServer(
            port=args.port, ssl_context=tls, output_len=args.output_len or None, usage=not args.no_usage, **cfg
        ) as srv:
            print(f"READY {srv.url}", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
