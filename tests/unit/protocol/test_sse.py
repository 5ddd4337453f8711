from __future__ import annotations

import orjson
import pytest

from inferplane.protocol.errors import error_body, sse_error_event
from inferplane.protocol.sse import SSEDecoder

STREAM = (b'data: {"a":1}\n\n: keep-alive comment\n\ndata: {"b":2}\r\n\r\nevent: x\ndata: line1\ndata: line2\n\n'
          b"data: [DONE]\n\n")


@pytest.mark.parametrize("split", [1, 3, 7, len(STREAM)])
def test_decoder_yields_the_same_events_however_the_bytes_are_split(split: int) -> None:
    dec = SSEDecoder()
    out = []
    for i in range(0, len(STREAM), split):
        out += list(dec.feed(STREAM[i : i + split]))
    assert out == [b'{"a":1}', b'{"b":2}', b"line1\nline2", b"[DONE]"]


def test_flush_returns_an_unterminated_last_event() -> None:
    dec = SSEDecoder()
    assert list(dec.feed(b"data: tail")) == []
    assert list(dec.flush()) == [b"tail"]


def test_error_bodies_have_the_openai_shape() -> None:
    assert orjson.loads(error_body("m", "t", param="p", code="c")) == {
        "error": {"message": "m", "type": "t", "param": "p", "code": "c"}}
    (payload,) = list(SSEDecoder().feed(sse_error_event("broken")))
    assert orjson.loads(payload)["error"]["message"] == "broken"
