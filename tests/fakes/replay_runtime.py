"""A fake runtime server that replays a fixture folder (tests/fixtures/<runtime>/).

Run as ``python tests/fakes/replay_runtime.py FIXTURE_DIR ARGV0 [the runtime's own argv...]``,
normally through a two-line wrapper script that a deployment's ``executable`` points to
(``exec python replay_runtime.py DIR "$0" "$@"``), so the supervisor launches it with
exactly the argv the adapter built. It then:

- writes ``{"argv": [ARGV0, ...], "env": {OLLAMA_*...}}`` to ``$REPLAY_ARGV_FILE`` (if set);
- finds its port the way the runtime would (``--port``, ``--server-port``, or
  ``OLLAMA_HOST``) and its served name (``--served-model-name``, ``--model-name``);
- stays closed for ``$REPLAY_LOAD_S`` seconds (default 0.3) like a runtime loading its
  model, and where health.json records a loading status (SGLang: 503) answers that
  status for the same time after binding;
- serves health, ``/v1/models``, chat completions (plain and streamed, per the
  recordings; the ``choices: []`` usage chunk only when ``stream_options.include_usage``),
  the recorded error for unknown models (runtimes that check the name) or for
  ``max_tokens >= 9000`` (the recorded trigger), and the recorded metrics;
- for Ollama, the native API: ``GET /``, ``/api/tags``, ``/api/chat`` (NDJSON when
  streaming) and ``/api/generate`` (an empty prompt = "load the model"); each native
  request body is appended to ``$REPLAY_REQUESTS_FILE`` (if set) for tests to inspect.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

FIXTURE_MODEL = b'"smollm2"'
CHECKS_MODEL = {"vllm", "lmdeploy", "ollama", "max"}
"""Runtimes that answer an unknown model name with their recorded error."""


def _flag(argv: list[str], *names: str) -> str | None:
    for i, a in enumerate(argv):
        if a in names and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _events(text: str) -> list[bytes]:
    return [e.encode() + b"\n\n" for e in text.split("\n\n") if e.strip()]


class Replay:
    def __init__(self, fixtures: Path, argv: list[str]) -> None:
        self.dir = fixtures
        self.runtime = fixtures.name
        self.argv = argv
        self.served = _flag(argv, "--served-model-name", "--model-name", "--alias")
        self.health = json.loads(self._read("health.json"))
        self.error = json.loads(self._read("error.json"))
        self.ready_at = 0.0
        self.requests_file = os.environ.get("REPLAY_REQUESTS_FILE")

    def _read(self, name: str) -> str:
        return (self.dir / name).read_text()

    def _bytes(self, name: str) -> bytes:
        return (self.dir / name).read_bytes()

    def _model(self, body: bytes, model: str) -> bytes:
        return body.replace(FIXTURE_MODEL, json.dumps(model).encode())

    def _error(self) -> web.Response:
        body = self.error["body"]
        text = body if isinstance(body, str) else json.dumps(body)
        return web.Response(status=self.error["status"], text=text, content_type="application/json")

    # -- OpenAI-compatible surface -------------------------------------------------------

    async def health_route(self, _r: web.Request) -> web.Response:
        if time.monotonic() < self.ready_at and self.health.get("loading_status"):
            return web.Response(status=self.health["loading_status"])
        body = self.health.get("ready_body", "")
        if isinstance(body, dict):
            return web.json_response(body, status=self.health["ready_status"])
        return web.Response(status=self.health["ready_status"], text=body)

    async def models(self, _r: web.Request) -> web.Response:
        data = json.loads(self._read("models.json"))
        return web.json_response(data.get("v1_models", data))

    async def chat(self, request: web.Request) -> web.StreamResponse:
        req = await request.json()
        model = req.get("model", "")
        bad_model = self.runtime in CHECKS_MODEL and self.served is not None and model != self.served
        if bad_model or (req.get("max_tokens") or 0) >= 9000:
            return self._error()
        if not req.get("stream"):
            return web.Response(body=self._model(self._bytes("chat.json"), model), content_type="application/json")
        want_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for event in _events(self._read("chat_stream.txt")):
            if b'"choices":[]' in event and not want_usage:
                continue
            await resp.write(self._model(event, model))
            await asyncio.sleep(0.005)
        await resp.write_eof()
        return resp

    async def metrics(self, _r: web.Request) -> web.Response:
        return web.Response(text=self._read("metrics.txt"), content_type="text/plain")

    # -- Ollama native API -----------------------------------------------------------------

    def _log_request(self, path: str, body: dict[str, Any]) -> None:
        if self.requests_file:
            with open(self.requests_file, "a") as f:
                f.write(json.dumps({"path": path, "body": body}) + "\n")

    def _ollama_known(self, model: str) -> bool:
        return model == json.loads(self._read("api_chat.json"))["model"]

    async def ollama_root(self, _r: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def ollama_tags(self, _r: web.Request) -> web.Response:
        return web.json_response(json.loads(self._read("models.json"))["api_tags"])

    async def ollama_generate(self, request: web.Request) -> web.StreamResponse:
        req = await request.json()
        model = req.get("model", "")
        if not self._ollama_known(model):
            return web.json_response(self.error["native"]["body"], status=404)
        if req.get("prompt", "") == "":  # "load the model" request
            return web.json_response({"model": model, "created_at": "2026-01-01T00:00:00Z", "response": "",
                                      "done": True, "done_reason": "load"})
        self._log_request("/api/generate", req)
        return web.Response(body=self._bytes("api_generate.json"), content_type="application/json")

    async def ollama_chat(self, request: web.Request) -> web.StreamResponse:
        req = await request.json()
        self._log_request("/api/chat", req)
        if not self._ollama_known(req.get("model", "")):
            return web.json_response(self.error["native"]["body"], status=404)
        if not req.get("stream", True):
            return web.Response(body=self._bytes("api_chat.json"), content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        data = self._bytes("api_chat_stream.ndjson")
        for i in range(0, len(data), 37):  # arbitrary byte boundaries, as TCP may deliver them
            await resp.write(data[i : i + 37])
            await asyncio.sleep(0.002)
        await resp.write_eof()
        return resp

    def app(self) -> web.Application:
        app = web.Application()
        r = app.router
        if self.runtime == "ollama":
            r.add_get("/", self.ollama_root)
            r.add_get("/api/tags", self.ollama_tags)
            r.add_post("/api/generate", self.ollama_generate)
            r.add_post("/api/chat", self.ollama_chat)
            r.add_get("/v1/models", self.models)
            return app
        if self.health["path"] != "/v1/models":  # MLC: readiness is the model list
            r.add_get(self.health["path"], self.health_route)
        r.add_get("/v1/models", self.models)
        r.add_post("/v1/chat/completions", self.chat)
        if self.runtime == "trtllm":  # Prometheus text lives apart; /metrics is JSON iteration stats
            r.add_get("/prometheus/metrics", self.metrics)
            r.add_get("/metrics", lambda _r: web.json_response([]))
        else:
            r.add_get("/metrics", self.metrics)
        return app


def _port(argv: list[str]) -> int:
    p = _flag(argv, "--port", "--server-port", "-p")
    if p is None:
        p = os.environ.get("OLLAMA_HOST", "").rsplit(":", 1)[-1]
    return int(p)


def main() -> None:
    fixtures, argv = Path(sys.argv[1]), sys.argv[2:]
    record = os.environ.get("REPLAY_ARGV_FILE")
    if record:
        env = {k: v for k, v in os.environ.items() if k.startswith(("OLLAMA_", "PREFIX_CACHING", "VLLM_"))}
        Path(record).write_text(json.dumps({"argv": argv, "env": env}))
    replay = Replay(fixtures, argv)
    load_s = float(os.environ.get("REPLAY_LOAD_S", "0.3"))
    if replay.health.get("loading_status"):
        replay.ready_at = time.monotonic() + load_s  # binds at once, answers "loading" meanwhile
    else:
        time.sleep(load_s)  # port closed while "loading", like the real runtime
    web.run_app(replay.app(), host="127.0.0.1", port=_port(argv), print=None, access_log=None)


if __name__ == "__main__":
    main()
