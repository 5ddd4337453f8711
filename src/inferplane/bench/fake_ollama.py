"""Ollama's native API for the fake server, replayed from a recording with ``api_*`` files.

Routes: ``GET /`` ("Ollama is running"), ``/api/tags``, ``/api/chat`` (NDJSON when streaming, cut at
arbitrary byte boundaries the way TCP may deliver it) and ``/api/generate`` (an empty prompt is
Ollama's "load the model" request). Each native chat/generate body is appended, as one JSON line,
to ``$REPLAY_REQUESTS_FILE`` when that is set, for tests to inspect what the gateway sent.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from aiohttp import web

from inferplane.bench.fake_recording import Recording

__all__ = ["add_ollama_routes"]


def add_ollama_routes(app: web.Application, rec: Recording) -> None:
    folder = rec.folder
    known = json.loads((folder / "api_chat.json").read_text())["model"]
    missing = json.loads((folder / "error.json").read_text())["native"]["body"]
    tags = json.loads((folder / "models.json").read_text())["api_tags"]
    requests_file = os.environ.get("REPLAY_REQUESTS_FILE")

    def log(path: str, body: dict[str, Any]) -> None:
        if requests_file:
            with open(requests_file, "a") as f:
                f.write(json.dumps({"path": path, "body": body}) + "\n")

    async def root(_r: web.Request) -> web.Response:
        return web.Response(body=rec.ready_body, status=rec.ready_status)

    async def api_tags(_r: web.Request) -> web.Response:
        return web.json_response(tags)

    async def generate(request: web.Request) -> web.StreamResponse:
        req = await request.json()
        model = req.get("model", "")
        if model != known:
            return web.json_response(missing, status=404)
        if req.get("prompt", "") == "":  # "load the model"
            return web.json_response({"model": model, "created_at": "2026-01-01T00:00:00Z", "response": "",
                                      "done": True, "done_reason": "load"})
        log("/api/generate", req)
        return web.Response(body=(folder / "api_generate.json").read_bytes(), content_type="application/json")

    async def chat(request: web.Request) -> web.StreamResponse:
        req = await request.json()
        log("/api/chat", req)
        if req.get("model", "") != known:
            return web.json_response(missing, status=404)
        if not req.get("stream", True):
            return web.Response(body=(folder / "api_chat.json").read_bytes(), content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        data = (folder / "api_chat_stream.ndjson").read_bytes()
        for i in range(0, len(data), 37):
            await resp.write(data[i : i + 37])
            await asyncio.sleep(0.002)
        await resp.write_eof()
        return resp

    r = app.router
    if rec.health_path == "/":
        r.add_get("/", root)
    r.add_get("/api/tags", api_tags)
    r.add_post("/api/generate", generate)
    r.add_post("/api/chat", chat)
