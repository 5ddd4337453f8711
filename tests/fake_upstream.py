"""A misbehaving OpenAI-compatible upstream for gateway failure tests (the one fake, in fault modes).

Run as a script: ``python tests/fake_upstream.py PORT MODE`` where MODE is
- ``ok``: answers chat completions (plain and streamed: role chunk, "hel", "lo", finish chunk);
- ``close_after_stream``: like ok, but a connection that carried a streamed response is
  dropped, without an answer, when the next request arrives on it - the way llama.cpp's
  server was seen dropping kept-alive connections;
- ``break_stream``: streams two content chunks, then aborts the TCP connection;
- ``status_500``: answers every completion with a 500;
- ``slow``: like ok, but waits 1 s before answering.

The server is ``inferplane.bench.fake_server.FakeOpenAIServer`` with ``fault=MODE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

from aiohttp import web

from inferplane.bench.fake_server import FakeOpenAIServer

MODES = ("ok", "close_after_stream", "break_stream", "status_500", "slow")


def make_server(mode: str, port: int = 0) -> FakeOpenAIServer:
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    return FakeOpenAIServer(port=port, fault="none" if mode == "ok" else mode, model="fake",
                            text=("hel", "lo"), ttft_s=0.0, itl_s=0.01)


def make_app(mode: str) -> web.Application:
    return make_server(mode).app()


async def _run(port: int, mode: str) -> None:
    async with make_server(mode, port):
        await asyncio.Event().wait()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(int(sys.argv[1]), sys.argv[2]))
