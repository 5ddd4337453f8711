"""The Anthropic and Ollama surfaces when things go wrong: an in-process gateway in front of misbehaving
OpenAI upstreams (tests/integration/gateway/proxy_harness.py), driven by the official clients.

What a client of each API must see: the gateway's own rejections (401, 429, 503) and a stream cut
mid-way in its own API's shape - an exception of the right class from its own SDK, never a silent
cut or a shape it cannot parse.
"""

from __future__ import annotations

import asyncio

import anthropic
import ollama
import pytest
from proxy_harness import faulty_upstream, running_gateway

pytestmark = pytest.mark.integration

MSGS = [{"role": "user", "content": "hi"}]


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def _claude(url: str, key: str = "unused") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=30)


def test_both_surfaces_serve_an_openai_runtime() -> None:
    async def main() -> None:
        async with faulty_upstream("ok") as (up, _), running_gateway([up]) as (_gw, url):
            msg = await asyncio.to_thread(_claude(url).messages.create, model="m", max_tokens=8, messages=MSGS)
            assert msg.content[0].text == "hello" and msg.usage.output_tokens == 1 and msg.stop_reason == "end_turn"

            def stream() -> str:
                with _claude(url).messages.stream(model="m", max_tokens=8, messages=MSGS) as s:
                    return "".join(s.text_stream)
            assert await asyncio.to_thread(stream) == "hello"
            chat = await asyncio.to_thread(ollama.Client(host=url).chat, model="m", messages=MSGS)
            assert chat.message.content == "hello" and chat.done_reason == "stop" and chat.eval_count == 1

    _run(main())


def test_keys_are_taken_from_x_api_key_or_bearer_and_refusals_have_each_apis_shape() -> None:
    async def main() -> None:
        async with faulty_upstream("ok") as (up, _), running_gateway([up], api_keys=["sekret"]) as (_gw, url):
            with pytest.raises(anthropic.AuthenticationError) as exc:
                await asyncio.to_thread(_claude(url, "wrong").messages.create, model="m", max_tokens=8, messages=MSGS)
            assert exc.value.body["error"]["type"] == "authentication_error"
            with pytest.raises(ollama.ResponseError) as oexc:
                await asyncio.to_thread(ollama.Client(host=url).chat, model="m", messages=MSGS)
            assert oexc.value.status_code == 401 and "API key" in oexc.value.error
            # anthropic 2.x sends the key as a bearer token; older SDKs and curl users send x-api-key
            bearer = _claude(url, "sekret")
            assert (await asyncio.to_thread(bearer.messages.create, model="m", max_tokens=8, messages=MSGS)).content
            legacy = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0,
                                         default_headers={"x-api-key": "sekret", "authorization": ""})
            assert (await asyncio.to_thread(legacy.messages.create, model="m", max_tokens=8, messages=MSGS)).content
            keyed = ollama.Client(host=url, headers={"Authorization": "Bearer sekret"})
            assert (await asyncio.to_thread(keyed.chat, model="m", messages=MSGS)).message.content == "hello"

    _run(main())


def test_a_rate_limited_runtime_is_a_rate_limit_error_in_each_api() -> None:
    async def main() -> None:
        async with faulty_upstream("ratelimit") as (up, _), running_gateway([up]) as (_gw, url):
            with pytest.raises(anthropic.RateLimitError) as exc:
                await asyncio.to_thread(_claude(url).messages.create, model="m", max_tokens=8, messages=MSGS)
            assert exc.value.body == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
            assert exc.value.request_id == exc.value.response.headers["x-request-id"]
            with pytest.raises(ollama.ResponseError) as oexc:
                await asyncio.to_thread(ollama.Client(host=url).chat, model="m", messages=MSGS)
            assert (oexc.value.status_code, oexc.value.error) == (429, "slow down")

    _run(main())


def test_a_stream_cut_mid_way_ends_with_an_error_each_client_raises() -> None:
    async def main() -> None:
        async with faulty_upstream("no_done") as (up, _), running_gateway([up]) as (_gw, url):
            def claude_stream() -> None:
                with _claude(url).messages.stream(model="m", max_tokens=8, messages=MSGS) as s:
                    "".join(s.text_stream)
            with pytest.raises(anthropic.APIStatusError) as exc:
                await asyncio.to_thread(claude_stream)
            assert "without its final" in str(exc.value)

            def ollama_stream() -> list[str]:
                return [p.message.content for p in ollama.Client(host=url).chat(model="m", messages=MSGS, stream=True)]
            with pytest.raises(ollama.ResponseError) as oexc:
                await asyncio.to_thread(ollama_stream)
            assert "without its final" in oexc.value.error

    _run(main())


def test_no_ready_replica_is_overloaded_for_anthropic_and_503_for_ollama() -> None:
    async def main() -> None:
        async with running_gateway([], queue_timeout_s=0.2) as (_gw, url):
            with pytest.raises(anthropic.InternalServerError) as exc:
                await asyncio.to_thread(_claude(url).messages.create, model="m", max_tokens=8, messages=MSGS)
            assert exc.value.status_code == 503 and exc.value.body["error"]["type"] == "overloaded_error"
            assert exc.value.response.headers.get("retry-after")
            with pytest.raises(ollama.ResponseError) as oexc:
                await asyncio.to_thread(ollama.Client(host=url).chat, model="m", messages=MSGS)
            assert oexc.value.status_code == 503

    _run(main())


def test_a_key_sees_only_the_models_it_may_call_on_every_surface() -> None:
    """Model lists and lookups outside the request pipeline (Ollama tags/show/ps, Anthropic
    count_tokens and models.list, OpenAI models.retrieve) are scoped like /v1/models: a key that
    may not call ``m`` cannot tell it is served."""
    import hashlib

    import openai

    from inferplane.config.tenants import TenantConfig

    def tenant(name: str, key: str, deployments: tuple[str, ...]) -> TenantConfig:
        return TenantConfig(name=name, key_sha256=hashlib.sha256(key.encode()).hexdigest(), deployments=deployments)

    async def main() -> None:
        tenants = (tenant("ours", "k-ours", ("m",)), tenant("theirs", "k-theirs", ("elsewhere",)))
        async with faulty_upstream("ok") as (up, _), running_gateway([up], tenants=tenants) as (_gw, url):
            def seen(key: str) -> tuple[list[str], list[str], list[str], bool, bool]:
                client = ollama.Client(host=url, headers={"Authorization": f"Bearer {key}"})
                tags = [m.model for m in client.list().models]
                claude = _claude(url, key)
                listed = [m.id for m in claude.models.list().data]
                oai = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
                models = [m.id for m in oai.models.list().data]
                try:
                    claude.messages.count_tokens(model="m", messages=MSGS)
                    counted = True
                except anthropic.NotFoundError:
                    counted = False
                try:
                    client.show("m")
                    shown = True
                except ollama.ResponseError as exc:
                    assert exc.status_code == 404
                    shown = False
                return tags, listed, models, counted, shown

            assert await asyncio.to_thread(seen, "k-ours") == (["m:latest"], ["m"], ["m"], True, True)
            assert await asyncio.to_thread(seen, "k-theirs") == ([], [], [], False, False)
            with pytest.raises(openai.NotFoundError):
                await asyncio.to_thread(openai.OpenAI(base_url=url + "/v1", api_key="k-theirs",
                                                      max_retries=0).models.retrieve, "m")

    _run(main())
