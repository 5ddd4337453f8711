"""POST /v1/responses through the whole pipeline (in-process upstream, no sockets): a runtime
without the route gets the chat request, the client gets the Responses API, a broken stream ends
with the Responses API's own error event."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pydantic
from memory_gateway import call, memory_gateway
from openai.types.responses import Response, ResponseStreamEvent

from inferplane.gateway.memory_transport import MemoryRequest, MemoryWire

FIX = Path(__file__).parents[2] / "fixtures" / "responses"
EVENTS = pydantic.TypeAdapter(ResponseStreamEvent)


def _events(body: bytes) -> list:
    out = []
    for block in body.split(b"\n\n"):
        data = [line[6:] for line in block.split(b"\n") if line.startswith(b"data: ")]
        if data:
            out.append(EVENTS.validate_python(orjson.loads(data[0])))
    return out


async def recorded(req: MemoryRequest, wire: MemoryWire) -> None:
    assert req.path == "/v1/chat/completions"
    if orjson.loads(req.body).get("stream"):
        wire.start()
        wire.chunk((FIX / "chat_stream.txt").read_bytes())
        wire.end()
    else:
        wire.respond(200, (FIX / "chat_stop.json").read_bytes())


async def broken(req: MemoryRequest, wire: MemoryWire) -> None:
    wire.start()
    wire.chunk(b'data: {"choices":[{"index":0,"delta":{"content":"The"}}]}\n\n')
    await asyncio.sleep(0)
    wire.close()  # the runtime dies mid-answer: no finish, no [DONE]


def test_plain_and_streamed_responses_over_a_chat_runtime() -> None:
    async def main() -> None:
        gw, conn, _ = memory_gateway(recorded)
        plain = await call(gw, {"model": "m", "instructions": "Answer briefly.", "input": "Name a colour."},
                           path="/v1/responses")
        assert plain.status == 200
        resp = Response.model_validate(plain.json())
        assert resp.output_text == "The colour is red." and resp.instructions == "Answer briefly."
        sent = orjson.loads(conn.requests[-1].body)
        assert sent["messages"][0] == {"role": "system", "content": "Answer briefly."}
        streamed = await call(gw, {"model": "m", "input": "Name a colour.", "stream": True}, path="/v1/responses")
        assert streamed.headers["content-type"] == "text/event-stream"
        events = _events(streamed.body)
        assert events[0].type == "response.created" and events[-1].type == "response.completed"
        assert events[-1].response.output_text == "The colour is red."
        assert orjson.loads(conn.requests[-1].body)["stream_options"] == {"include_usage": True}
        assert 'route="responses",status="200"} 2.0' in gw.metrics.render().decode()
    asyncio.run(main())


def test_a_broken_stream_ends_with_a_responses_error_event() -> None:
    async def main() -> None:
        gw, _, _ = memory_gateway(broken, max_attempts=1)
        r = await call(gw, {"model": "m", "input": "x", "stream": True}, path="/v1/responses")
        events = _events(r.body)
        kinds = [e.type for e in events]
        assert "response.output_text.delta" in kinds and "response.completed" not in kinds
        assert kinds[-1] == "error" and events[-1].code and events[-1].code.startswith("upstream_stream")
    asyncio.run(main())
