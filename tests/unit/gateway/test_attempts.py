"""The attempt loop through an in-process transport (no sockets): what the client gets, what the
replicas get, and what the observers are told."""

from __future__ import annotations

import asyncio

import orjson
from memory_gateway import Recorder, call, chat, memory_gateway, sse

from inferplane.gateway.memory_transport import MemoryRequest, MemoryWire
from inferplane.observability.observer import Attempt, RequestRecord, failed_attempts_only

OK_BODY = (b'{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
           b'"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],'
           b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,'
           b'"prompt_tokens_details":{"cached_tokens":2}}}')


async def ok(req: MemoryRequest, wire: MemoryWire) -> None:
    wire.respond(200, OK_BODY, headers=[("x-request-id", "up-1")])


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_openai_passthrough_sends_the_clients_bytes_and_returns_the_runtimes_bytes() -> None:
    async def main() -> None:
        gw, conn, rec = memory_gateway(ok)
        body = b'{"model":"m",  "messages":[{"role":"user","content":"hi"}]}'  # odd spacing survives
        reply = await call(gw, body)
        assert reply.status == 200
        assert reply.body == OK_BODY
        assert conn.requests[0].body == body and conn.requests[0].path == "/v1/chat/completions"
        assert reply.headers["x-inferplane-endpoint"] == "m-1"
        assert reply.headers["x-upstream-request-id"] == "up-1"
        assert rec.names() == ["started", "attempt", "finished"]
        out = rec.outcome()
        assert (out.status, out.endpoint_id, out.retries) == (200, "m-1", 0)
        assert out.usage is not None and (out.usage.prompt_tokens, out.usage.cached_tokens) == (3, 2)
        assert gw.registry.endpoints("m")[0].in_flight == 0
    run(main())


def test_a_refused_connection_moves_on_to_the_next_replica() -> None:
    async def main() -> None:
        gw, _, rec = memory_gateway(ok, 2, refuse=(0,))
        reply = await call(gw, chat())
        assert reply.status == 200 and reply.headers["x-inferplane-endpoint"] == "m-2"
        assert rec.attempts() == ["connect", "ok"]
        assert rec.outcome().retries == 1
        metrics = gw.metrics.render().decode()
        assert 'inferplane_upstream_errors_total{endpoint="m-1",kind="connect",model="m"} 1.0' in metrics
        assert 'inferplane_retries_total{model="m",reason="connect"} 1.0' in metrics
    run(main())


class FailuresRecorder(Recorder):
    @failed_attempts_only
    def attempt(self, rec: RequestRecord, attempt: Attempt) -> None:
        super().attempt(rec, attempt)


def test_with_no_observer_taking_ok_attempts_the_failures_are_still_reported() -> None:
    async def main() -> None:
        gw, _, rec = memory_gateway(ok, 2, refuse=(0,), recorder=FailuresRecorder())
        assert not gw.observers.wants_ok_attempts  # the metrics observer takes failed attempts only
        reply = await call(gw, chat())
        assert reply.status == 200 and reply.headers["x-inferplane-endpoint"] == "m-2"
        assert rec.names() == ["started", "attempt", "finished"] and rec.attempts() == ["connect"]
        out = rec.outcome()
        assert (out.status, out.endpoint_id, out.retries) == (200, "m-2", 1)
        metrics = gw.metrics.render().decode()
        assert 'inferplane_upstream_errors_total{endpoint="m-1",kind="connect",model="m"} 1.0' in metrics
        assert 'inferplane_retries_total{model="m",reason="connect"} 1.0' in metrics
        assert 'inferplane_requests_total{model="m",route="chat",status="200"} 1.0' in metrics
        assert 'inferplane_prompt_tokens_total{model="m"} 3.0' in metrics
    run(main())


def test_every_replica_refusing_is_a_502_in_openai_shape() -> None:
    async def main() -> None:
        gw, _, rec = memory_gateway(ok, 2, refuse=(0, 1))
        reply = await call(gw, chat())
        assert reply.status == 502
        assert reply.json()["error"]["code"] == "upstream_connect"
        assert rec.attempts() == ["connect", "connect"]
        assert rec.outcome().status == 502 and rec.outcome().error_code == "upstream_connect"
    run(main())


def test_no_ready_replica_is_a_503_with_retry_after() -> None:
    async def main() -> None:
        gw, conn, rec = memory_gateway(ok, 1)
        for ep in gw.registry.endpoints("m"):
            gw.registry.set_ready(ep, False)
        reply = await call(gw, chat())
        assert reply.status == 503 and "retry-after" in reply.headers
        assert reply.json()["error"]["code"] == "model_not_ready"
        assert rec.attempts() == [] and not conn.requests
        assert rec.outcome().status == 503
    run(main())


def test_the_same_500_from_two_replicas_is_the_requests_fault_and_blames_no_one() -> None:
    async def same_500(req: MemoryRequest, wire: MemoryWire) -> None:
        wire.respond(500, b'{"error":{"code":500,"message":"something odd","type":"server_error"}}')

    async def main() -> None:
        gw, _, rec = memory_gateway(same_500, 2)
        reply = await call(gw, chat())
        assert reply.status == 400
        assert "something odd" in reply.json()["error"]["message"]
        assert rec.attempts() == ["request_fault", "ok"]
        assert [e.consecutive_failures for e in gw.registry.endpoints("m")] == [0, 0]
        assert "inferplane_upstream_errors_total{" not in gw.metrics.render().decode()
    run(main())


def test_a_5xx_followed_by_an_answer_is_blamed_on_its_replica() -> None:
    n = 0

    async def first_fails(req: MemoryRequest, wire: MemoryWire) -> None:
        nonlocal n
        n += 1
        if n == 1:
            wire.respond(500, b'{"error":{"message":"engine step 1 failed","type":"server_error"}}')
        else:
            await ok(req, wire)

    async def main() -> None:
        gw, _, rec = memory_gateway(first_fails, 2)
        reply = await call(gw, chat())
        assert reply.status == 200
        assert sorted(rec.attempts()) == ["ok", "status_5xx"]
        assert [e.consecutive_failures for e in gw.registry.endpoints("m")] == [1, 0]
    run(main())


def test_a_stream_is_relayed_untouched_and_its_first_token_reported() -> None:
    chunks = [sse({"role": "assistant", "content": ""}), sse({"content": "hel"}), sse({"content": "lo"}),
              sse({}, "stop"), sse(None, usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}),
              b"data: [DONE]\n\n"]

    async def stream(req: MemoryRequest, wire: MemoryWire) -> None:
        wire.start()
        for c in chunks:
            wire.chunk(c)
            await asyncio.sleep(0)
        wire.end()

    async def main() -> None:
        gw, conn, rec = memory_gateway(stream)
        reply = await call(gw, chat(stream=True, stream_options={"include_usage": True}))
        assert reply.status == 200 and reply.headers["content-type"] == "text/event-stream"
        assert reply.body == b"".join(chunks)
        assert rec.names() == ["started", "first_token", "attempt", "finished"]
        out = rec.outcome()
        assert out.status == 200 and out.usage is not None and out.usage.completion_tokens == 2
        assert out.ttft_s is not None and out.ttft_s >= 0
        assert conn.closed == 0  # read to the end: the connection went back to the pool
    run(main())


def test_a_stream_without_done_ends_with_an_error_event_and_a_closed_upstream() -> None:
    async def cut(req: MemoryRequest, wire: MemoryWire) -> None:
        wire.start()
        wire.chunk(sse({"content": "hel"}))
        wire.end()

    async def main() -> None:
        gw, conn, rec = memory_gateway(cut)
        reply = await call(gw, chat(stream=True))
        events = [e for e in reply.body.split(b"\n\n") if e]
        assert orjson.loads(events[-1][len(b"data: "):])["error"]["code"] == "upstream_stream_incomplete"
        assert rec.attempts() == ["stream_incomplete"]
        assert rec.outcome().status == 502
        assert conn.closed == 1
    run(main())


def test_malformed_ollama_ndjson_mid_stream_closes_the_upstream_and_ends_the_stream_with_an_error() -> None:
    generating = asyncio.Event()

    async def ollama(req: MemoryRequest, wire: MemoryWire) -> None:
        assert req.path == "/api/chat"
        wire.start(content_type="application/x-ndjson")
        wire.chunk(b'{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant",'
                   b'"content":"hel"},"done":false}\n')
        await asyncio.sleep(0.01)
        wire.chunk(b'{"model":"m","message":{"role":"assistant","content":"lo"},"done":fals\n')  # broken
        generating.set()
        await asyncio.sleep(3600)  # the runtime would go on generating until its connection closes

    async def main() -> None:
        gw, conn, rec = memory_gateway(ollama, runtime="ollama")
        reply = await asyncio.wait_for(call(gw, chat(stream=True)), 10)
        assert reply.status == 200
        events = [e for e in reply.body.split(b"\n\n") if e]
        first = orjson.loads(events[0][len(b"data: "):])
        assert first["choices"][0]["delta"]["content"] == "hel"
        last = orjson.loads(events[-1][len(b"data: "):])
        assert last["error"]["code"] == "upstream_stream_invalid"
        assert conn.closed == 1  # the upstream connection was closed ...
        await asyncio.sleep(0)
        assert conn.requests and generating.is_set()
        out = rec.outcome()  # ... and the request accounted for, once
        assert out.status == 502 and out.error_code == "upstream_stream_invalid"
        assert rec.attempts() == ["stream_invalid"]
        assert gw.registry.endpoints("m")[0].in_flight == 0
        assert 'inferplane_requests_total{model="m",route="chat",status="502"} 1.0' in gw.metrics.render().decode()
    run(main())


def test_a_client_that_goes_away_mid_stream_cancels_the_upstream_and_is_a_499() -> None:
    started = asyncio.Event()

    async def slow(req: MemoryRequest, wire: MemoryWire) -> None:
        wire.start()
        wire.chunk(sse({"content": "hel"}))
        started.set()
        await asyncio.sleep(3600)

    async def main() -> None:
        gw, conn, rec = memory_gateway(slow)
        task = asyncio.ensure_future(call(gw, chat(stream=True)))
        await started.wait()
        await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)
        assert conn.closed == 1
        assert rec.outcome().status == 499
        assert "inferplane_client_disconnects_total" in gw.metrics.render().decode()
        assert gw.registry.endpoints("m")[0].in_flight == 0
    run(main())


def test_the_gateways_own_rejections_reach_the_observers_and_the_request_counter() -> None:
    async def main() -> None:
        gw, conn, rec = memory_gateway(ok, api_keys=("k",))
        auth = {"authorization": "Bearer k"}
        assert (await call(gw, chat())).status == 401
        assert (await call(gw, b"{not json", headers=auth)).status == 400
        assert (await call(gw, chat(model="nope"), headers=auth)).status == 404
        assert (await call(gw, chat(), headers=auth)).status == 200
        done = [(r.model, o.status, o.error_code) for e, r, o in rec.events if e == "finished"]
        assert done == [(None, 401, "invalid_api_key"), (None, 400, "invalid_json"), (None, 404, "model_not_found"),
                        ("m", 200, None)]
        metrics = gw.metrics.render().decode()
        for status in (400, 401, 404):
            assert f'inferplane_requests_total{{model="",route="chat",status="{status}"}} 1.0' in metrics
        assert len(conn.requests) == 1
    run(main())


def test_a_stream_that_did_not_ask_for_usage_is_sent_asking_for_it_and_the_client_sees_none() -> None:
    usage = sse(None, usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})

    async def stream(req: MemoryRequest, wire: MemoryWire) -> None:
        wire.start()
        wire.chunk(sse({"content": "hi"}) + sse({}, "stop") + usage + b"data: [DONE]\n\n")
        wire.end()

    async def main() -> None:
        for sent in (b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true} \n',
                     b' \r\n\t{ "messages":[{"role":"user","content":"{hi}"}],"model":"m","stream":true}',
                     b'{"model":"m","stream":true,"stream_options":null,"messages":[{"role":"user","content":"x"}]}',
                     b'{"model":"m","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user",'
                     b'"content":"x"}]}'):
            gw, conn, rec = memory_gateway(stream)
            reply = await call(gw, sent)
            assert reply.status == 200 and b"usage" not in reply.body and b"data: [DONE]" in reply.body
            upstream = conn.requests[-1].body
            assert orjson.loads(upstream) == {**orjson.loads(sent), "stream_options": {"include_usage": True}}
            assert upstream.count(b"stream_options") == 1
            assert rec.outcome().usage is not None and rec.outcome().usage.completion_tokens == 2
    run(main())


def test_a_request_written_upstream_is_not_left_open_when_counting_it_in_flight_fails() -> None:
    """The request goes out on a pooled connection before it is counted in flight; if counting
    raises (a bug in a load listener), the written request's connection is closed, so the
    runtime stops generating for an answer nobody reads."""

    async def main() -> None:
        gw, conn, _ = memory_gateway(ok)
        assert (await call(gw, chat())).status == 200  # leaves an idle pooled connection

        def broken(_ep: object) -> None:
            raise RuntimeError("listener bug")

        gw.registry.on_load(broken)
        try:
            await call(gw, chat())
        except RuntimeError:
            pass  # the HTTP server answers 500; the handler itself raises it
        assert len(conn.requests) == 2  # it was written, on the pooled connection
        assert conn.closed == 1
    run(main())
