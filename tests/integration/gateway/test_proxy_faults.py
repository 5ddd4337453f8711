"""The proxy against upstreams that fail in the ways issue 10 found: whose fault, what the client sees.

In-process: a real Gateway (HTTP server, upstream pool, router) on 127.0.0.1 in front of
aiohttp upstreams (proxy_harness.py), driven with the official openai client.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import openai
import orjson
import pytest
from proxy_harness import HUGE_BYTES, faulty_upstream, running_gateway

from helpers import free_port, http_get

pytestmark = pytest.mark.integration

MSGS = [{"role": "user", "content": "hi"}]


def _client(url: str, timeout: float = 30) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=timeout)


async def _post(url: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as h, \
            h.post(url + "/v1/chat/completions", json={"model": "m", "messages": MSGS}) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read()


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def test_a_request_caused_500_is_the_clients_400_and_never_opens_a_breaker(caplog) -> None:
    async def main() -> None:
        async with faulty_upstream("image_500") as (bad, bad_app), faulty_upstream("ok") as (good, _), \
                running_gateway([bad, good], runtime="llamacpp") as (gw, url):
                client = _client(url)
                for _ in range(8):  # more than the breaker's threshold of 5
                    with pytest.raises(openai.BadRequestError) as exc:
                        await client.chat.completions.create(model="m", messages=MSGS)
                    assert "image input is not supported" in exc.value.message
                    assert isinstance(exc.value.code, str)
                    assert exc.value.body["type"] == "invalid_request_error"
                    await client.chat.completions.create(model="m", messages=MSGS)  # advance round robin
                assert bad_app["chat_requests"] == 8  # not retried: once per request
                assert all(gw.router.breaker_state(e).name == "CLOSED" for e in gw.registry)
                assert all(e.consecutive_failures == 0 for e in gw.registry)

    with caplog.at_level(logging.WARNING):
        _run(main())
    assert not [r for r in caplog.records if "breaker" in r.getMessage()]


def test_the_same_500_from_two_replicas_is_the_requests_fault() -> None:
    async def main() -> None:
        async with faulty_upstream("opaque_500") as (a, a_app), faulty_upstream("opaque_500") as (b, b_app), \
                running_gateway([a, b]) as (gw, url):
                client = _client(url)
                for _ in range(6):
                    with pytest.raises(openai.BadRequestError) as exc:
                        await client.chat.completions.create(model="m", messages=MSGS)
                    assert "something odd" in exc.value.message
                assert a_app["chat_requests"] + b_app["chat_requests"] == 12  # two replicas asked, no third try
                assert all(gw.router.breaker_state(e).name == "CLOSED" for e in gw.registry)

    _run(main())


def test_a_replica_failing_differently_is_blamed_and_logged(caplog) -> None:
    async def main() -> None:
        async with faulty_upstream("dying_500") as (bad, _), faulty_upstream("ok") as (good, _), \
                running_gateway([bad, good]) as (gw, url):
                client = _client(url)
                for _ in range(10):
                    r = await client.chat.completions.with_raw_response.create(model="m", messages=MSGS)
                    assert r.parse().choices[0].message.content == "hello"
                bad_ep = gw.registry.endpoints("m")[0]
                assert gw.router.breaker_state(bad_ep).name == "OPEN"

    with caplog.at_level(logging.WARNING):
        _run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert any("upstream m-1" in m and "status_5xx" in m for m in messages)
    assert any("breaker of m-1 opened" in m for m in messages)


@pytest.mark.parametrize("mode", ["html_200", "bad_json_200"])
def test_a_200_that_is_not_json_is_a_502_and_fails_over(mode: str) -> None:
    async def main() -> None:
        async with faulty_upstream(mode) as (bad, _):
            async with running_gateway([bad]) as (gw, url):
                with pytest.raises(openai.APIStatusError) as exc:
                    await _client(url).chat.completions.create(model="m", messages=MSGS)
                assert exc.value.status_code == 502
                assert exc.value.code == "upstream_invalid_response"
                assert "not JSON" in exc.value.message
                assert gw.registry.endpoints("m")[0].consecutive_failures == 1
            async with faulty_upstream("ok") as (good, _), running_gateway([bad, good]) as (_, url):
                r = await _client(url).chat.completions.create(model="m", messages=MSGS)
                assert r.choices[0].message.content == "hello"

    _run(main())


def test_an_upstream_body_over_the_cap_is_a_502_not_buffered() -> None:
    async def main() -> None:
        async with faulty_upstream("huge_200") as (big, _):
            async with running_gateway([big], upstream_max_body_bytes=HUGE_BYTES // 2) as (_, url):
                with pytest.raises(openai.APIStatusError) as exc:
                    await _client(url).chat.completions.create(model="m", messages=MSGS)
                assert exc.value.status_code == 502
                assert exc.value.code == "upstream_too_large"
            async with running_gateway([big], upstream_max_body_bytes=HUGE_BYTES * 2) as (_, url):
                status, _, body = await _post(url)
                assert status == 200 and len(body) > HUGE_BYTES

    _run(main())


def test_a_stream_without_its_terminator_ends_with_an_error_event() -> None:
    async def main() -> None:
        async with faulty_upstream("no_done") as (up, _), running_gateway([up]) as (_, url):
            got = []
            with pytest.raises(openai.APIError) as exc:
                async for c in await _client(url).chat.completions.create(model="m", messages=MSGS, stream=True):
                    got.append(c.choices[0].delta.content or "" if c.choices else "")
            assert "".join(got) == "hello"
            assert "without its final 'data: [DONE]'" in str(exc.value)

    _run(main())


def test_a_stalled_stream_ends_with_an_error_event_and_frees_the_slot() -> None:
    async def main() -> None:
        async with faulty_upstream("stall") as (up, seen), \
                running_gateway([up], stream_idle_timeout_s=1.0, probe_after_s=5.0) as (gw, url):
                t0 = time.monotonic()
                with pytest.raises(openai.APIError) as exc:
                    async for _ in await _client(url).chat.completions.create(model="m", messages=MSGS,
                                                                              stream=True):
                        pass
                assert "stalled" in str(exc.value)
                assert time.monotonic() - t0 < 30  # generous: the stall timeout is 1 s
                assert gw.registry.endpoints("m")[0].in_flight == 0
                for _ in range(100):  # the upstream saw its connection close (its generation cancelled)
                    if seen.get("cancelled"):
                        break
                    await asyncio.sleep(0.05)
                assert seen.get("cancelled") == 1

    _run(main())


def test_rate_limit_headers_pass_through_and_503s_say_when_to_retry() -> None:
    async def main() -> None:
        async with faulty_upstream("ratelimit") as (up, _), running_gateway([up]) as (_, url):
            status, headers, body = await _post(url)
            assert status == 429
            assert headers["retry-after"] == "7"
            assert headers["x-ratelimit-remaining-requests"] == "0"
            assert headers["x-upstream-request-id"] == "up-1"
            assert headers["x-request-id"] != "up-1"  # the gateway's own id stays the gateway's
            assert orjson.loads(body)["error"]["type"] == "rate_limit_error"
        async with faulty_upstream("ok") as (up, _), running_gateway([up]) as (gw, url):
            for ep in gw.registry:
                gw.registry.set_ready(ep, False)
            status, headers, body = await _post(url)
            assert status == 503 and orjson.loads(body)["error"]["code"] == "model_not_ready"
            assert int(headers["retry-after"]) >= 1

    _run(main())


def test_runtime_errors_reach_the_client_in_openais_shape_naming_the_setting() -> None:
    async def main() -> None:
        async with faulty_upstream("context") as (up, _), running_gateway([up], runtime="llamacpp") as (_, url):
            with pytest.raises(openai.BadRequestError) as exc:
                await _client(url).chat.completions.create(model="m", messages=MSGS)
            err = exc.value.body
            assert set(err) == {"message", "type", "param", "code"}
            assert err["code"] == "context_length_exceeded"
            assert "exceeds the available context size" in err["message"]
            assert "--ctx-size" in err["message"]  # an endpoint inferplane did not launch: the runtime's flag

    _run(main())


def test_a_frozen_replica_does_not_hold_requests_while_another_is_free(tmp_path: Path) -> None:
    """SIGSTOP one of two upstream processes; requests routed to it move on within seconds."""
    fake = Path(__file__).parents[2] / "fake_upstream.py"
    procs = []
    urls = []
    for _ in range(2):
        port = free_port()
        procs.append(subprocess.Popen([sys.executable, str(fake), str(port), "ok"]))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for u in urls:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if http_get(u + "/health", timeout=1)[0] == 200:
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

        async def main() -> None:
            async with running_gateway(urls, probe_after_s=1.0, probe_timeout_s=1.0) as (gw, url):
                client = _client(url, timeout=60)
                assert (await client.chat.completions.create(model="m", messages=MSGS)).choices
                os.kill(procs[0].pid, signal.SIGSTOP)
                frozen = gw.registry.endpoints("m")[0]
                for _ in range(5):  # until the failed probes took it out of the pool
                    t0 = time.monotonic()
                    rs = await asyncio.gather(*(client.chat.completions.with_raw_response.create(
                        model="m", messages=MSGS) for _ in range(4)))
                    elapsed = time.monotonic() - t0
                    assert all(r.parse().choices[0].message.content == "hello" for r in rs)
                    assert {r.headers["x-inferplane-endpoint"] for r in rs} == {"m-2"}
                    assert elapsed < 20  # generous; they would wait first_byte_timeout_s (600 s) before
                    if not frozen.ready:
                        break
                    await asyncio.sleep(1.1)  # past the reuse of the last probe's answer
                assert not frozen.ready  # taken out of the pool until it answers again

        _run(main())
    finally:
        for p in procs:
            with_stop = p.poll() is None
            if with_stop:
                os.kill(p.pid, signal.SIGCONT)
                p.terminate()
                p.wait(10)


def test_a_replica_dying_under_the_last_request_is_a_503_with_retry_after() -> None:
    """The only replica goes down mid-request (its supervisor takes it out): retry later, not 502."""
    holder: list = []

    def down() -> None:
        gw = holder[0]
        for ep in gw.registry:
            gw.registry.set_ready(ep, False)

    async def main() -> None:
        async with faulty_upstream("drop", on_chat=down) as (up, _), running_gateway([up]) as (gw, url):
            holder.append(gw)
            status, headers, body = await _post(url)
            assert status == 503, body
            err = orjson.loads(body)["error"]
            assert err["code"] == "model_not_ready" and "closed the connection" in err["message"]
            assert int(headers["retry-after"]) >= 1
        async with faulty_upstream("drop") as (up, _), running_gateway([up]) as (gw, url):
            status, _, body = await _post(url)  # still ready (it answers probes): its failure is a 502
            assert status == 502 and orjson.loads(body)["error"]["code"] == "upstream_disconnect"

    _run(main())
