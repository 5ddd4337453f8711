"""A trivial OpenAI upstream for overhead benchmarks: answers every POST with the same small
chat completion (a stream of its chunks when the body asks ``"stream":true``), as fast as
aiohttp on uvloop can. ``python benchmarks/null_upstream.py PORT [CERT KEY [API_KEY_ENV]]``
(with CERT and KEY it serves HTTPS; with API_KEY_ENV it wants ``Authorization: Bearer <that variable>``).

Any path prefix works too (``/r17/v1/chat/completions``), so that a benchmark can give each of many
endpoints a URL of its own (the gateway keeps one connection pool per base URL). ``GET /stats``: the
completions answered and the distinct client connections they came on, so far."""

from __future__ import annotations

import os
import ssl
import sys

import uvloop
from aiohttp import web

BODY = (b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"Hello there! How can I help?"},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":12,"completion_tokens":8,"total_tokens":20}}')

_CHUNK = (b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
          b'"delta":{%s},"finish_reason":%s}]}\n\n')
STREAM = b"".join((
    _CHUNK % (b'"role":"assistant","content":""', b"null"),
    *(_CHUNK % (b'"content":"%s"' % word, b"null") for word in (b"Hello", b" there!", b" How", b" can", b" I", b" help?")),
    _CHUNK % (b"", b'"stop"'),
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
    b'"usage":{"prompt_tokens":12,"completion_tokens":8,"total_tokens":20}}\n\n',
    b"data: [DONE]\n\n",
))
"""The answer to a streamed request: OpenAI's chunks, usage last, in one write (so a client reads
it in the same number of socket reads every time: a deterministic count per request)."""

SEEN = {"requests": 0}
PEERS: set[object] = set()


async def chat(request: web.Request) -> web.Response:
    body = await request.read()
    SEEN["requests"] += 1
    PEERS.add(request.transport.get_extra_info("peername") if request.transport else None)
    if b'"stream":true' in body:
        return web.Response(body=STREAM, content_type="text/event-stream")
    return web.Response(body=BODY, content_type="application/json")


async def stats(_request: web.Request) -> web.Response:
    return web.json_response({"requests": SEEN["requests"], "connections": len(PEERS)})


async def prefixed(request: web.Request) -> web.Response:
    """``/<anything>/v1/...``: the same answers under any base path."""
    tail = request.match_info["tail"]
    if request.method == "POST" and tail == "v1/chat/completions":
        return await chat(request)
    if request.method == "GET" and tail in ("v1/models", "health"):
        return await ok(request)
    raise web.HTTPNotFound()


async def ok(_request: web.Request) -> web.Response:
    return web.Response(body=b'{"object":"list","data":[{"id":"m","object":"model"}]}', content_type="application/json")


def main() -> None:
    middlewares = []
    if len(sys.argv) > 4:
        want = f"Bearer {os.environ[sys.argv[4]]}"

        @web.middleware
        async def auth(request: web.Request, handler):  # type: ignore[no-untyped-def]
            if request.headers.get("Authorization") != want:
                return web.json_response({"error": "Unauthorized"}, status=401)
            return await handler(request)

        middlewares.append(auth)
    tls = None
    if len(sys.argv) > 3:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(sys.argv[2], sys.argv[3])
    app = web.Application(middlewares=middlewares)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", ok)
    app.router.add_get("/health", ok)
    app.router.add_get("/stats", stats)
    app.router.add_route("*", "/{base:[^/]+}/{tail:.*}", prefixed)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, ssl_context=tls)


if __name__ == "__main__":
    main()
