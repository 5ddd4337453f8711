"""A fake OpenAI-compatible server with configurable timing, for tests and demos.

    async with FakeOpenAIServer(ttft_s=0.2, itl_s=0.02, output_len=16) as srv:
        ...  # POST f"{srv.url}/v1/chat/completions"

Streaming responses send, in order: a role-only chunk (immediately), then after ``ttft_s``
the first content chunk, then one content chunk every ``itl_s``; each content chunk carries
``tokens_per_chunk`` tokens (the word ``"tok "``, which the client estimate counts as one
token); then a usage chunk when the request asked for ``stream_options.include_usage`` and
``usage`` is on, then ``[DONE]``. Output length is ``output_len`` or, when ``None``, the
request's ``max_tokens``. ``reasoning_tokens`` leading tokens go out as ``reasoning_content``.
``fail_every=k`` answers every k-th request with HTTP 500. Also runnable as a process:
``python -m inferplane.bench.fake_server --port 8000 --ttft-s 0.2 --itl-s 0.02``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

import orjson
from aiohttp import web

__all__ = ["FakeOpenAIServer", "FakeServerConfig", "main"]


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


class FakeOpenAIServer:
    """Serves ``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``, ``/ready`` on 127.0.0.1.

    Use as ``async with`` (runs on the current loop) or ``with server.in_thread()`` (own loop in a
    daemon thread). ``requests_seen`` counts requests; not thread-safe to read while running.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **config: object) -> None:
        self.config = FakeServerConfig(**config)  # type: ignore[arg-type]
        self.host = host
        self.port = port
        self.requests_seen = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:43123`` (append ``/v1/...``)."""
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> FakeOpenAIServer:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/ready", self._ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=4096)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None:
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

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

    async def _ready(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": self.config.model, "object": "model", "owned_by": "fake"}],
            }
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, chat=True)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, chat=False)

    async def _complete(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        cfg = self.config
        self.requests_seen += 1
        body = orjson.loads(await request.read())
        if cfg.fail_every and self.requests_seen % cfg.fail_every == 0:
            return web.json_response(
                {"error": {"message": "injected failure", "type": "server_error"}}, status=500
            )
        n = cfg.output_len if cfg.output_len is not None else int(body.get("max_tokens") or 16)
        prompt_tokens = len(orjson.dumps(body.get("messages") or body.get("prompt") or "")) // 4
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": n,
            "total_tokens": prompt_tokens + n,
        }
        if not body.get("stream"):
            await asyncio.sleep(cfg.ttft_s + cfg.itl_s * max(0, -(-n // cfg.tokens_per_chunk) - 1))
            text = "tok " * n
            whole = (
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "length",
                }
                if chat
                else {"index": 0, "text": text, "finish_reason": "length"}
            )
            out: dict[str, object] = {
                "id": "fake",
                "object": "chat.completion",
                "model": cfg.model,
                "choices": [whole],
            }
            if cfg.usage:
                out["usage"] = usage
            return web.Response(body=orjson.dumps(out), content_type="application/json")
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        if chat:
            await resp.write(
                _event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
            )
        start = time.monotonic()
        sent = 0
        k = 0
        while sent < n:
            # Sleep to absolute deadlines so delays do not accumulate.
            await asyncio.sleep(max(0.0, start + cfg.ttft_s + k * cfg.itl_s - time.monotonic()))
            m = min(cfg.tokens_per_chunk, n - sent)
            reasoning = sent < cfg.reasoning_tokens
            choice: dict[str, object]
            if chat:
                delta = {"reasoning_content": "tok " * m} if reasoning else {"content": "tok " * m}
                choice = {"index": 0, "delta": delta}
            else:
                choice = {"index": 0, "text": "tok " * m}
            await resp.write(_event({"choices": [choice]}))
            sent += m
            k += 1
        want_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if cfg.usage and want_usage:
            await resp.write(_event({"choices": [], "usage": usage}))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


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
    args = ap.parse_args(argv)

    async def serve() -> None:
        cfg = {
            "ttft_s": args.ttft_s,
            "itl_s": args.itl_s,
            "tokens_per_chunk": args.tokens_per_chunk,
            "fail_every": args.fail_every,
            "reasoning_tokens": args.reasoning_tokens,
        }
        async with FakeOpenAIServer(
            port=args.port, output_len=args.output_len or None, usage=not args.no_usage, **cfg
        ) as srv:
            print(f"READY {srv.url}", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
