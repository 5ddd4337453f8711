"""The issue-10 campaign at the HTTP level, against a real `inferplane serve` in front of a fake
upstream: smuggling, trailers, auth tricks, oversize heads, 100-continue, pipelining with garbage,
HTTP/1.0, HEAD, path tricks, slow and many clients, aborted uploads.

Every case must be answered or closed within ``ANSWER_WITHIN_S``, never with a 5xx; afterwards the
gateway and the upstream still answer and the gateway's RSS (gc as `serve` configures it) is back
within a bound of where it started.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hostile_client import ANSWER_WITHIN_S, Answer, exchange, rss_mb, send_until_answered

from helpers import ServeProcess, http_get, start_serve

pytestmark = pytest.mark.integration

KEY = "sk-hostile-1"
AUTH = b"Authorization: Bearer " + KEY.encode() + b"\r\n"
CHAT = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}).encode()
RSS_BOUND_MB = 40.0
"""How far above its starting RSS the gateway may stay after a hostile run."""


def _serve(tmp_path: Path, upstream: str, **gateway: object) -> ServeProcess:
    cfg = {"gateway": {"scrape_interval_s": 1, "api_keys": [KEY], **gateway},
           "deployments": [{"name": "m", "runtime": "openai", "replicas": 0,
                            "endpoints": [{"url": upstream}]}]}
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return start_serve(["--config", str(path)], tmp_path, ready_timeout=60)


def _post(path: bytes, body: bytes, extra: bytes = b"", version: bytes = b"1.1") -> bytes:
    return (b"POST %s HTTP/%s\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s"
            b"Connection: close\r\n\r\n%s" % (path, version, len(body), extra, body))


def _get(path: bytes, extra: bytes = b"", method: bytes = b"GET") -> bytes:
    return b"%s %s HTTP/1.1\r\nHost: h\r\n%sConnection: close\r\n\r\n" % (method, path, extra)


def _chunked(path: bytes, chunks: list[bytes], head_extra: bytes = b"", trailers: bytes = b"") -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n" + trailers + b"\r\n"
    return (b"POST %s HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n%s"
            b"Connection: close\r\n\r\n%s" % (path, head_extra, body))


def _is(status: int) -> Callable[[Answer], str | None]:
    return lambda a: None if a.status == status else f"expected {status}"


def _all(*checks: Callable[[Answer], str | None]) -> Callable[[Answer], str | None]:
    def check(a: Answer) -> str | None:
        for c in checks:
            problem = c(a)
            if problem:
                return problem
        return None

    return check


def _has(needle: bytes, where: str = "data") -> Callable[[Answer], str | None]:
    return lambda a: None if needle in getattr(a, where) else f"{needle!r} not in the {where}"


def _lacks(needle: bytes, where: str = "data") -> Callable[[Answer], str | None]:
    return lambda a: f"{needle!r} in the {where}" if needle in getattr(a, where) else None


C = b"/v1/chat/completions"
CASES: list[tuple[str, bytes, Callable[[Answer], str | None]]] = [
    # smuggling and framing (llhttp strict mode)
    ("CL and TE together", b"POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\n" + AUTH +
     b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", _is(400)),
    ("two Content-Lengths", b"POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\n" + AUTH +
     b"Content-Length: 2\r\nContent-Length: 3\r\n\r\nabc", _is(400)),
    ("obs-fold", b"GET /health HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  folded\r\n\r\n", _is(400)),
    ("TE chunked not last", b"POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, "
     b"identity\r\n\r\n0\r\n\r\n", _is(400)),
    ("TE gzip", b"POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\n" + AUTH +
     b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", _is(501)),
    ("bare LF", b"GET /health HTTP/1.1\nHost: h\n\n", _is(400)),
    ("NUL in a header", b"GET /health HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n", _is(400)),
    ("chunk size overflow", _chunked(C, []).replace(b"0\r\n\r\n", b"1ffffffffffffffff\r\nx"), _is(400)),
    ("a 16 EiB chunk", _chunked(C, [], AUTH).replace(b"\r\n\r\n0\r\n", b"\r\n\r\nffffffffffffffff\r\n" +
                                                        b"x" * 300_000 + b"\r\n"), _is(413)),
    # trailers never become headers
    ("key only in a trailer", _chunked(C, [CHAT], trailers=AUTH), _is(401)),
    ("trailer overriding a good key", _chunked(C, [CHAT], AUTH, b"Authorization: Bearer wrong\r\n"), _is(200)),
    ("request id in a trailer", _chunked(C, [CHAT], AUTH, b"X-Request-Id: from-trailer\r\n"),
     _all(_is(200), _lacks(b"from-trailer"))),
    # auth
    ("lower-case bearer", _post(C, CHAT, b"Authorization: bearer " + KEY.encode() + b"\r\n"), _is(200)),
    ("upper-case BEARER", _post(C, CHAT, b"Authorization: BEARER " + KEY.encode() + b"\r\n"), _is(200)),
    ("two Authorization headers", _post(C, CHAT, AUTH + b"Authorization: Bearer other\r\n"), _is(400)),
    ("wrong key", _post(C, CHAT, b"Authorization: Bearer nope\r\n"), _is(401)),
    ("key without scheme", _post(C, CHAT, b"Authorization: " + KEY.encode() + b"\r\n"), _is(401)),
    ("unknown route without key", _get(b"/v1/secret-admin"), _is(401)),
    ("wrong method without key", _get(C), _is(401)),
    ("admin without key", _get(b"/admin/endpoints"), _is(401)),
    ("unknown route with key", _get(b"/v1/secret-admin", AUTH), _is(404)),
    ("wrong method with key", _get(C, AUTH), _all(_is(405), _has(b"Allow: POST"))),
    ("health stays open", _get(b"/health"), _is(200)),
    ("HEAD on a GET route", _get(b"/health", method=b"HEAD"),
     _all(_is(200), _has(b"Content-Length: 15", "head"), lambda a: "a body came" if a.body else None)),
    ("HEAD /v1/models with key", _get(b"/v1/models", AUTH, b"HEAD"),
     _all(_is(200), lambda a: "a body came" if a.body else None)),
    # path tricks: never a 5xx, never routed around the key
    *[(f"path {p!r}", _get(p), _is(401)) for p in (
        b"//v1/chat/completions", b"/v1/chat/completions/", b"/v1/./chat/completions", b"/v1/../admin/endpoints",
        b"/v1/%63hat/completions", b"/V1/CHAT/COMPLETIONS", b"/admin/endpoints%00", b"/admin/endpoints;x",
        b"/%2e%2e/admin/endpoints", b"/v1/chat/completions#x")],
    ("absolute-form target", _get(b"http://evil.example/health"), _is(200)),
    ("asterisk-form", _get(b"*", method=b"OPTIONS"), _is(401)),
    # oversize heads and bodies
    ("URL of 100 KB", _get(b"/" + b"a" * 100_000), _is(414)),
    ("header line of 100 KB", _get(b"/health", b"X-Big: " + b"a" * 100_000 + b"\r\n"), _is(431)),
    ("5,000 headers", _get(b"/health", b"".join(b"X-%d: v\r\n" % i for i in range(5000))), _is(431)),
    ("Content-Length over the limit", _post(C, b"x" * 300_000, AUTH), _all(_is(413), _has(b"request_too_large"))),
    ("Content-Length of 2^63", b"POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\n" + AUTH +
     b"Content-Length: 9223372036854775807\r\n\r\n", _is(413)),
    # body content the JSON parser must refuse
    ("NaN", _post(C, b'{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":NaN}', AUTH), _is(400)),
    ("deep nesting", _post(C, b'{"model":"m","messages":' + b"[" * 5000 + b"]" * 5000 + b"}", AUTH), _is(400)),
    ("invalid UTF-8", _post(C, b'{"model":"m","messages":[{"role":"user","content":"\xff\xfe"}]}', AUTH), _is(400)),
    # pipelining with garbage, HTTP/1.0
    ("valid then garbage", b"GET /health HTTP/1.1\r\nHost: h\r\n\r\nNOT HTTP AT ALL\r\n\r\n",
     lambda a: None if a.statuses == [200, 400] else f"statuses {a.statuses}, wanted [200, 400]"),
    ("HTTP/1.0 stream", _post(C, json.dumps({"model": "m", "stream": True, "messages": [
        {"role": "user", "content": "hi"}]}).encode(), AUTH, b"1.0"),
     _all(_is(200), _lacks(b"Transfer-Encoding", "head"), _has(b"data: [DONE]", "body"))),
    ("HTTP/1.0 plain", _post(C, CHAT, AUTH, b"1.0"), _all(_is(200), _has(b"Content-Length", "head"))),
    ("Date header", _get(b"/health"), _has(b"\r\nDate: ", "head")),
]


def _expect_continue(port: int, length: int) -> tuple[bytes, float]:
    """Send a head with ``Expect: 100-continue`` and no body; what comes back within 5 s."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\n" + AUTH +
                     b"Content-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n" % length)
        try:
            return sock.recv(65536), time.monotonic() - t0
        except TimeoutError:
            return b"", time.monotonic() - t0


def test_hostile_requests_get_a_4xx_or_their_answer_and_the_gateway_stays_up(tmp_path: Path, fake_server) -> None:
    upstream = fake_server(ttft_s=0, itl_s=0, output_len=2)
    sp = _serve(tmp_path, upstream, max_body_bytes=200_000)
    try:
        rss0 = rss_mb(sp.proc.pid)
        problems = []
        for name, payload, check in CASES:
            a = exchange(sp.port, payload)
            problem = (f"not answered and closed within {ANSWER_WITHIN_S} s" if not a.closed else
                       f"5xx ({a.status})" if a.status >= 500 and a.status != 501 else check(a))
            if problem:
                problems.append(f"{name}: {problem}; got {a.data[:300]!r}")

        head, waited = _expect_continue(sp.port, 5_000_000)
        if not head.startswith(b"HTTP/1.1 413") or b"100 Continue" in head or waited > 5:
            problems.append(f"100-continue over the limit: got {head[:200]!r} after {waited:.1f} s")
        head, _ = _expect_continue(sp.port, len(CHAT))
        if not head.startswith(b"HTTP/1.1 100 Continue"):
            problems.append(f"100-continue within the limit: got {head[:200]!r}")

        assert not problems, "\n".join(problems)
        assert http_get(sp.url + "/health")[0] == 200
        assert http_get(upstream + "/v1/models")[0] == 200
        assert rss_mb(sp.proc.pid) - rss0 < RSS_BOUND_MB
    finally:
        assert sp.stop() == 0


def _abort(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def _aborted_upload(port: int, size: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\n" + AUTH +
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % size)
        piece = b"x" * 262144
        left = size - 1
        while left > 0:
            sock.sendall(piece[:left])
            left -= len(piece)
        _abort(sock)


def test_slow_many_and_vanishing_clients_leave_no_memory_and_no_held_connections(tmp_path: Path, fake_server) -> None:
    upstream = fake_server(ttft_s=0, itl_s=0, output_len=2)
    sp = _serve(tmp_path, upstream, request_head_timeout_s=2, max_connections=64)
    try:
        for _ in range(3):  # warm up: the first requests allocate what the gateway keeps anyway
            assert exchange(sp.port, _post(C, CHAT, AUTH)).status == 200
        rss0 = rss_mb(sp.proc.pid)

        # 20 uploads of 7 MiB, each reset one byte short of its body (issue 10: +141 MB for good).
        for _ in range(20):
            _aborted_upload(sp.port, 7 * 1024 * 1024)
        # 10 MB of headers on 8 connections at once: cut off at the head limit.
        lines = b"".join(b"X-F%06d: %s\r\n" % (i, b"a" * 980) for i in range(10_000))
        answers: list[tuple[Answer, int]] = []
        threads = [threading.Thread(target=lambda: answers.append(
            send_until_answered(sp.port, b"GET /health HTTP/1.1\r\nHost: h\r\n", lines, len(lines) + 40)))
            for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(ANSWER_WITHIN_S * 2)
        assert [a.status for a, _ in answers] == [431] * 8
        assert all(sent < 5_000_000 for _, sent in answers)

        # Slowloris: 30 connections trickling a head a byte at a time are all cut at the head deadline.
        socks = [socket.create_connection(("127.0.0.1", sp.port), timeout=5) for _ in range(30)]
        for s in socks:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: h\r\n")
        t0 = time.monotonic()
        open_socks = list(socks)
        while open_socks and time.monotonic() - t0 < ANSWER_WITHIN_S:
            time.sleep(0.25)
            still = []
            for s in open_socks:
                try:
                    s.sendall(b"X")
                    still.append(s)
                except OSError:
                    s.close()
            open_socks = still
        for s in socks:
            s.close()
        assert not open_socks, f"{len(open_socks)} slowloris connections still open after {ANSWER_WITHIN_S} s"

        # The connection cap: 64 held, the next is refused with a 503 that says why; then all is well.
        held = [socket.create_connection(("127.0.0.1", sp.port), timeout=5) for _ in range(64)]
        time.sleep(0.3)
        refused = exchange(sp.port, _get(b"/health"))
        for s in held:
            s.close()
        assert refused.status == 503 and b"Retry-After" in refused.head and b"too_many_connections" in refused.body
        time.sleep(0.5)
        assert exchange(sp.port, _post(C, CHAT, AUTH)).status == 200

        time.sleep(1.0)
        grown = rss_mb(sp.proc.pid) - rss0
        assert grown < RSS_BOUND_MB, f"gateway RSS grew {grown:.0f} MB and stayed"
        assert http_get(upstream + "/v1/models")[0] == 200
    finally:
        assert sp.stop() == 0
