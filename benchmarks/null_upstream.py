"""A trivial OpenAI upstream for overhead benchmarks: answers every POST with the same small
chat completion, as fast as aiohttp on uvloop can. ``python benchmarks/null_upstream.py PORT``"""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web

BODY = (b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"Hello there! How can I help?"},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":12,"completion_tokens":8,"total_tokens":20}}')


async def chat(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=BODY, content_type="application/json")


async def ok(_request: web.Request) -> web.Response:
    return web.Response(body=b'{"object":"list","data":[{"id":"m","object":"model"}]}', content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", ok)
    app.router.add_get("/health", ok)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
