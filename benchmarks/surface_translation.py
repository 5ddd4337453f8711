"""CPU cost of the Anthropic and Ollama surfaces' translation, per request and per streamed chunk, in µs.

What a request on either surface pays over the OpenAI passthrough path (which translates
nothing): the request body parsed, translated and re-encoded as OpenAI, the whole answer
translated back, or each SSE chunk of a stream re-encoded. Inputs are the recorded payloads
the unit tests use: what the official clients send (tests/fixtures/surfaces/live) and what the
embedded runtime answered (tests/fixtures/embedded/live).

    python benchmarks/surface_translation.py [--repeat 20000] [--rounds 5]

Prints the best (min over rounds) and median per-call time of each step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from inferplane.config import DeploymentConfig
from inferplane.gateway.http_messages import Request
from inferplane.gateway.surfaces.anthropic import AnthropicSurface
from inferplane.gateway.surfaces.base import Served
from inferplane.gateway.surfaces.ollama import OllamaSurface
from inferplane.protocol.anthropic import (
    messages_to_openai,
    openai_to_message,
)
from inferplane.protocol.anthropic_stream import OpenAIToAnthropicStream
from inferplane.protocol.ollama_surface import (
    OpenAIToOllamaStream,
    chat_from_ollama,
    openai_to_chat,
)
from inferplane.protocol.routes import Route
from inferplane.runtimes.registry import get_adapter

ROOT = Path(__file__).parents[1] / "tests" / "fixtures"


def _live(name: str) -> bytes:
    return orjson.dumps(json.loads((ROOT / "surfaces" / "live" / name).read_text())["body"])


def _events(path: Path) -> list[bytes]:
    return [block + b"\n\n" for block in path.read_bytes().split(b"\n\n") if block.strip()]


def _per_call(fn: Callable[[], object], repeat: int, rounds: int) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(repeat):
            fn()
        times.append((time.perf_counter() - t) / repeat * 1e6)
    return min(times), statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    a_req = _live("anthropic_messages_create.json")
    a_tool = _live("anthropic_messages_tool_result.json")
    o_req = _live("ollama_chat.json")
    answer = (ROOT / "embedded" / "live" / "chat.json").read_bytes()
    chunks = _events(ROOT / "embedded" / "live" / "chat_stream.txt")
    tool_chunks = _events(ROOT / "surfaces" / "openai_tool_stream.txt")

    def a_stream(cs: list[bytes]) -> Callable[[], object]:
        def run() -> object:
            tr = OpenAIToAnthropicStream("smollm2")
            return [tr.feed(c) for c in cs]
        return run

    def o_stream(cs: list[bytes]) -> Callable[[], object]:
        def run() -> object:
            tr = OpenAIToOllamaStream("chat", "smollm2", 0)
            return [tr.feed(c) for c in cs]
        return run

    dep = DeploymentConfig(name="smollm2", runtime="embedded", replicas=1)
    served = Served(dep, get_adapter("embedded").capabilities(), 0, None)

    def lookup(name: str) -> Served | None:
        return served if name == "smollm2" else None

    def parse(surface: object, path: str, body: bytes) -> Callable[[], object]:
        req = Request("POST", path, "", {"content-type": "application/json"}, body, True)
        return lambda: surface.parse(Route.CHAT, req, lookup)  # type: ignore[attr-defined]

    cases: list[tuple[str, Callable[[], object], int]] = [
        ("AnthropicSurface.parse (translate + the OpenAI checks), per request",
         parse(AnthropicSurface(), "/v1/messages", a_req), 1),
        ("OllamaSurface.parse /api/chat (translate + the OpenAI checks)", parse(OllamaSurface(), "/api/chat", o_req), 1),
        ("anthropic request (system, 3 turns, tools) -> openai", lambda: orjson.dumps(
            messages_to_openai(orjson.loads(a_req))), 1),
        ("anthropic request (tool_use/tool_result/image) -> openai", lambda: orjson.dumps(
            messages_to_openai(orjson.loads(a_tool))), 1),
        ("openai answer -> anthropic message", lambda: orjson.dumps(
            openai_to_message(orjson.loads(answer), "smollm2")), 1),
        (f"openai stream -> anthropic events ({len(chunks)} chunks), per chunk", a_stream(chunks), len(chunks)),
        (f"openai tool stream -> anthropic ({len(tool_chunks)} chunks), per chunk", a_stream(tool_chunks),
         len(tool_chunks)),
        ("ollama /api/chat request -> openai", lambda: orjson.dumps(chat_from_ollama(orjson.loads(o_req))), 1),
        ("openai answer -> ollama chat response", lambda: orjson.dumps(
            openai_to_chat(orjson.loads(answer), "smollm2", 1)), 1),
        (f"openai stream -> ollama ndjson ({len(chunks)} chunks), per chunk", o_stream(chunks), len(chunks)),
    ]
    print(f"{'step':<66} {'best µs':>9} {'median µs':>10}")
    for name, fn, per in cases:
        n = max(1, args.repeat // per)
        best, med = _per_call(fn, n, args.rounds)
        print(f"{name:<66} {best / per:>9.2f} {med / per:>10.2f}")


if __name__ == "__main__":
    main()
