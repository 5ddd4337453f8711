"""The Exchange is the request's record: every field an observer reads is there from the start."""

from __future__ import annotations

import dataclasses

from inferplane.gateway.exchange import Exchange
from inferplane.gateway.http_messages import Request
from inferplane.gateway.surfaces import OpenAISurface
from inferplane.gateway.surfaces.anthropic import AnthropicSurface
from inferplane.observability.observer import Observers, RequestRecord
from inferplane.protocol.routes import Route


def _exchange(surface: object, headers: dict[str, str]) -> Exchange:
    request = Request("POST", "/v1/chat/completions", "", headers, b"{}", True)
    return Exchange("rid-1", surface, Route.CHAT, request, None, Observers(), 12.5)  # type: ignore[arg-type]


def test_a_fresh_exchange_has_every_record_field_as_a_fresh_record_has_it() -> None:
    x = _exchange(OpenAISurface(), {"traceparent": "00-abc-def-01"})
    fresh = RequestRecord("rid-1", OpenAISurface.name, Route.CHAT, 12.5, x.started_unix, "/v1/chat/completions",
                          b"{}", traceparent="00-abc-def-01")
    for f in dataclasses.fields(RequestRecord):  # a field the hand-written __init__ forgot raises here
        assert getattr(x, f.name) == getattr(fresh, f.name), f.name
    assert isinstance(x, RequestRecord)
    assert (x.queued_s, x.retries, x.endpoint_id, x.runtime, x.done) == (0.0, 0, None, None, False)
    for name in Exchange.__slots__:  # all but what the pipeline sets once the request is parsed
        if name not in ("req", "encoder", "info"):
            getattr(x, name)


def test_the_request_id_goes_back_under_the_surfaces_own_header_too() -> None:
    assert _exchange(OpenAISurface(), {}).headers == [("x-request-id", "rid-1")]
    assert _exchange(AnthropicSurface(), {}).headers == [("x-request-id", "rid-1"), ("request-id", "rid-1")]
    assert _exchange(OpenAISurface(), {}).notes is not _exchange(OpenAISurface(), {}).notes
