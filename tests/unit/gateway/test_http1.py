"""The gateway's HTTP/1.1 server, over raw sockets: keep-alive, pipelining, chunking, limits."""

from __future__ import annotations

import asyncio

from inferplane.gateway import http1


async def _handler(req: http1.Request, out: http1.Responder) -> None:
    if req.path == "/stream":
        out.start(200, [("Content-Type", "text/event-stream")])
        for i in range(3):
            await out.write(b"data: %d\n\n" % i)
        out.end()
    else:
        out.send(200, b"%s %s %s %d" % (req.method.encode(), req.path.encode(), req.query.encode(), len(req.body)),
                 [("Content-Type", "text/plain")])


async def _exchange(payload: bytes, *, max_body: int = 1000, read_until_close: bool = True) -> bytes:
    server = await http1.serve(_handler, "127.0.0.1", 0, max_body_bytes=max_body)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(100_000) if not read_until_close else _read_all(reader), 5)
        writer.close()
        return data
    finally:
        server.close()


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while chunk := await reader.read(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def run(coro):
    return asyncio.run(coro)


def test_pipelined_requests_are_answered_in_order_on_one_connection() -> None:
    payload = (b"POST /a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
               b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
               b"GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    data = run(_exchange(payload))
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert data.index(b"POST /a x=1 3") < data.index(b"GET /b  0") < data.index(b"GET /c  0")
    assert data.endswith(b"GET /c  0")


def test_chunked_stream_then_plain_response_keep_the_connection() -> None:
    data = run(_exchange(b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
    assert b"Transfer-Encoding: chunked" in data
    assert b"9\r\ndata: 0\n\n\r\n" in data and b"0\r\n\r\n" in data
    assert data.endswith(b"GET /x  0")


def test_body_over_the_limit_is_answered_413_and_closed() -> None:
    body = b"x" * 5000
    data = run(_exchange(b"POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n" + body))
    assert data.startswith(b"HTTP/1.1 413") and b"Connection: close" in data
    assert b'"code":"request_too_large"' in data


def test_expect_100_continue_is_answered() -> None:
    data = run(_exchange(b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
                         read_until_close=False))
    assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")


def test_malformed_request_gets_400_and_close() -> None:
    data = run(_exchange(b"THIS IS NOT HTTP\r\n\r\n"))
    assert data.startswith(b"HTTP/1.1 400") and b"Connection: close" in data
    assert b'"type":"invalid_request_error"' in data


def test_chunked_request_bodies_are_decoded() -> None:
    data = run(_exchange(b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                         b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"))
    assert data.endswith(b"POST /c  5")


def test_idle_connections_are_closed_after_the_timeout() -> None:
    async def go() -> tuple[bytes, float]:
        server = await http1.serve(_handler, "127.0.0.1", 0, max_body_bytes=1000, idle_timeout_s=0.3)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
            t0 = asyncio.get_running_loop().time()
            data = await asyncio.wait_for(_read_all(reader), 5)  # returns when the server closes
            writer.close()
            return data, asyncio.get_running_loop().time() - t0
        finally:
            server.close()

    data, waited = run(go())
    assert data.endswith(b"GET /x  0")
    assert 0.2 < waited < 3


def test_requests_sent_one_after_another_are_served_and_a_closed_idle_connection_leaves_no_task() -> None:
    async def go() -> tuple[list[bytes], bytes, int, int]:
        server = await http1.serve(_handler, "127.0.0.1", 0, max_body_bytes=1000)
        port = server.sockets[0].getsockname()[1]
        before = len(asyncio.all_tasks())
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            answers = []
            for i, path in enumerate((b"/a", b"/stream", b"/b", b"/stream", b"/c")):
                writer.write(b"GET %s?n=%d HTTP/1.1\r\nHost: h\r\n\r\n" % (path, i))
                ends = b"0\r\n\r\n" if path == b"/stream" else b"%s n=%d 0" % (path, i)
                answers.append(await asyncio.wait_for(reader.readuntil(ends), 5))
            # a body announced with Expect after requests were served: the 100 comes at once
            writer.write(b"POST /d HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
            cont = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.write(b"ok")
            await asyncio.wait_for(reader.readuntil(b"POST /d  2"), 5)
            serving = len(asyncio.all_tasks())  # this connection's serving task, waiting for the next request
            writer.close()
            await writer.wait_closed()
            for _ in range(50):  # the server sees the close a loop iteration or two later
                if len(asyncio.all_tasks()) == before:
                    break
                await asyncio.sleep(0.01)
            return answers, cont, serving - before, len(asyncio.all_tasks()) - before
        finally:
            server.close()

    answers, cont, serving, left = run(go())
    assert [a.split(b"\r\n", 1)[0] for a in answers] == [b"HTTP/1.1 200 OK"] * 5
    assert answers[1].count(b"data: ") == 3 and answers[2].endswith(b"GET /b n=2 0")
    assert cont == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert serving <= 1 and left == 0  # at most one task for an idle connection, none once it closed
