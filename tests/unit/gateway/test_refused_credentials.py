"""An upstream that refuses the gateway's credentials (401/403): the client's key is not the
problem, so the client gets a 502 naming the endpoint and where its key comes from."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from memory_gateway import call, chat, memory_gateway
from test_attempts import OK_BODY

from inferplane.gateway.memory_transport import MemoryRequest, MemoryWire
from inferplane.routing.breaker import BreakerState
from inferplane.runtimes.access import AccessTable, UpstreamAccess

KEY = "sk-up-Xy81bq"


async def refuse_first(req: MemoryRequest, wire: MemoryWire) -> None:
    if req.headers.get("host", "").startswith("up-0"):
        wire.respond(401, b'{"error":{"message":"Invalid API Key","type":"authentication_error","code":401}}')
    else:
        wire.respond(200, OK_BODY)


async def refuse_all(req: MemoryRequest, wire: MemoryWire) -> None:
    wire.respond(403, b'{"error":"Forbidden"}')


def test_a_refusing_replica_is_skipped_and_not_counted_against_it(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        gw, _, rec = memory_gateway(refuse_first, 2)
        with caplog.at_level(logging.WARNING):
            for _ in range(12):  # round robin: every other request tries m-1 first
                reply = await call(gw, chat())
                assert reply.status == 200 and reply.headers["x-inferplane-endpoint"] == "m-2"
        assert rec.attempts().count("credentials_refused") >= 5  # the breaker's failure threshold
        assert gw.router.breaker_state(gw.registry.get("m-1")) == BreakerState.CLOSED  # a config fault opens no breaker
        refusals = [r for r in caplog.records if "refused" in r.getMessage() or "wants an API key" in r.getMessage()]
        assert len(refusals) == 1  # once per endpoint, not per request
        assert "m-1" in refusals[0].getMessage() and "api_key_env" in refusals[0].getMessage()
        gw.close()
    asyncio.run(main())


def test_every_replica_refusing_is_a_502_naming_the_variable_never_the_key() -> None:
    async def main() -> None:
        gw, _, rec = memory_gateway(refuse_all, 2)
        gw.pool.set_access(AccessTable({"http://up-0:80": UpstreamAccess(None, ("Authorization", "Bearer " + KEY),
                                                                         "$UP_KEY")}))
        reply = await call(gw, chat())
        assert reply.status == 502
        err = reply.json()["error"]
        assert err["code"] == "upstream_credentials"
        assert "m-1" in err["message"] or "m-2" in err["message"]
        assert KEY not in reply.body.decode()
        assert rec.outcome().status == 502 and rec.outcome().error_code == "upstream_credentials"
        assert rec.attempts() == ["credentials_refused", "credentials_refused"]
        gw.close()
    asyncio.run(main())


def test_the_message_says_which_variable_or_that_none_is_set() -> None:
    async def main() -> None:
        gw, _, _ = memory_gateway(refuse_all, 1)
        reply = await call(gw, chat())
        assert "none is configured" in reply.json()["error"]["message"]
        assert "api_key_env" in reply.json()["error"]["message"]
        gw.pool.set_access(AccessTable({"http://up-0:80": UpstreamAccess(None, ("Authorization", "Bearer " + KEY),
                                                                         "$UP_KEY")}))
        reply = await call(gw, chat(stream=True))  # a stream request refused before any byte: the same
        assert reply.status == 502
        msg = reply.json()["error"]["message"]
        assert "$UP_KEY" in msg and "m-1" in msg and "http://up-0:80" in msg and KEY not in msg
        gw.close()
    asyncio.run(main())


def test_a_half_open_breakers_trial_refused_is_settled_not_left_out() -> None:
    async def main() -> None:
        gw, _, rec = memory_gateway(refuse_all, 1)
        ep = gw.registry.get("m-1")
        for _ in range(5):  # real failures open its breaker...
            gw.router.failed(ep)
        breaker = gw.router.breaker(ep)
        breaker.record_failure(time.monotonic() - 100)  # ...long ago: the next request is its trial
        assert breaker.state == BreakerState.OPEN
        for _ in range(2):  # the trial is refused; the endpoint answered, so the next request goes to it too
            reply = await call(gw, chat())
            assert reply.status == 502 and reply.json()["error"]["code"] == "upstream_credentials"
        assert rec.attempts() == ["credentials_refused", "credentials_refused"]
        gw.close()
    asyncio.run(main())
