"""End to end: a real `inferplane serve` of SmolLM2 on the embedded llama.cpp runtime,
driven by the official openai SDK."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import openai
import pytest

from helpers import ServeProcess, http_get

pytestmark = pytest.mark.integration

MODEL = "smollm2"
MESSAGES = [{"role": "user", "content": "Name three colours of the rainbow."}]


@pytest.fixture(scope="module")
def client(served: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def aclient(served: ServeProcess) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_models_lists_the_default_model(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == [MODEL]


def test_chat_non_streamed(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, max_tokens=24)
    assert raw.headers.get("x-request-id")
    resp = raw.parse()
    assert resp.model == MODEL
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content.strip()
    u = resp.usage
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert 1 <= u.completion_tokens <= 24


def test_request_id_is_echoed(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=2, extra_headers={"x-request-id": "my-req-42"})
    assert raw.headers["x-request-id"] == "my-req-42"


def test_streamed_and_plain_chat_agree_at_temperature_zero(client: openai.OpenAI) -> None:
    kw = dict(model=MODEL, messages=MESSAGES, max_tokens=32, temperature=0, seed=7)
    plain = client.chat.completions.create(**kw)
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    # OpenAI's order: role first, the usage chunk last with no choices
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + chunks[-1].usage.completion_tokens
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [plain.choices[0].finish_reason]


def test_completions_streamed_and_plain_agree(client: openai.OpenAI) -> None:
    kw = dict(model=MODEL, prompt="The capital of France is", max_tokens=16, temperature=0, seed=1)
    plain = client.completions.create(**kw)
    text = "".join(c.choices[0].text for c in client.completions.create(stream=True, **kw) if c.choices)
    assert text == plain.choices[0].text
    assert plain.usage.total_tokens == plain.usage.prompt_tokens + plain.usage.completion_tokens


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_is_respected(client: openai.OpenAI, field: str) -> None:
    resp = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        temperature=0, **{field: 5})
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage.completion_tokens == 5


def test_stop_sequence(client: openai.OpenAI) -> None:
    resp = client.completions.create(model=MODEL, prompt="1, 2, 3, 4,", max_tokens=20, temperature=0, stop=["7"])
    assert "7" not in resp.choices[0].text
    assert resp.choices[0].finish_reason == "stop"


def test_json_object_response_format(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=MODEL, max_tokens=60, temperature=0, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Give a JSON object with a key 'colour'."}])
    text = resp.choices[0].message.content
    if resp.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(text), dict)
    else:  # cut by max_tokens: still the start of an object
        assert text.lstrip().startswith("{")


def test_json_schema_response_format(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"colour": {"enum": ["red", "green", "blue"]}},
              "required": ["colour"], "additionalProperties": False}
    resp = client.chat.completions.create(
        model=MODEL, max_tokens=30, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "num", "schema": schema}},
        messages=[{"role": "user", "content": "Pick a colour."}])
    assert json.loads(resp.choices[0].message.content)["colour"] in ("red", "green", "blue")


def test_logprobs(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=3, logprobs=True,
                                          top_logprobs=2)
    content = resp.choices[0].logprobs.content
    assert len(content) == resp.usage.completion_tokens
    assert all(t.logprob <= 0 for t in content)


def test_eight_concurrent_streams_complete(aclient: openai.AsyncOpenAI) -> None:
    async def one(i: int) -> tuple[str, int]:
        stream = await aclient.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"Count from {i} to {i + 5}."}],
            max_tokens=24, stream=True, stream_options={"include_usage": True})
        text, usage = "", 0
        async for c in stream:
            if c.choices:
                text += c.choices[0].delta.content or ""
            if c.usage:
                usage = c.usage.completion_tokens
        return text, usage

    async def all_of_them() -> list[tuple[str, int]]:
        return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(8))), 180)

    results = asyncio.run(all_of_them())
    assert len(results) == 8
    assert all(text and usage >= 1 for text, usage in results)


def test_keep_alive_survives_alternating_stream_and_plain(client: openai.OpenAI) -> None:
    """llama.cpp may drop a kept-alive connection after a stream; the client must never see it."""
    for i in range(12):
        if i % 2:
            list(client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=3, stream=True))
        else:
            client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=3)


def _metric(served: ServeProcess, name: str, **labels: str) -> float:
    _, body = http_get(served.url + "/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            head = line.split(" ")[0]
            if head.split("{")[0] == name:
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_move_after_requests(client: openai.OpenAI, served: ServeProcess) -> None:
    before_ok = _metric(served, "inferplane_requests_total", model=MODEL, route="chat", status="200")
    before_tokens = _metric(served, "inferplane_completion_tokens_total", model=MODEL)
    before_ttft = _metric(served, "inferplane_time_to_first_token_seconds_count", model=MODEL)
    client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4)
    list(client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4, stream=True,
                                        stream_options={"include_usage": True}))
    assert _metric(served, "inferplane_requests_total", model=MODEL, route="chat", status="200") == before_ok + 2
    assert _metric(served, "inferplane_completion_tokens_total", model=MODEL) >= before_tokens + 2
    assert _metric(served, "inferplane_time_to_first_token_seconds_count", model=MODEL) == before_ttft + 1
    assert _metric(served, "inferplane_e2e_request_latency_seconds_count", model=MODEL) >= 2
    assert _metric(served, "inferplane_inter_token_latency_seconds_count", model=MODEL) >= 1
    assert _metric(served, "inferplane_endpoint_ready", deployment=MODEL) == 1


def test_client_disconnect_cancels_the_generation(served: ServeProcess) -> None:
    ep = served.endpoints()[0]
    before = _metric(served, "inferplane_client_disconnects_total", model=MODEL)
    req = urllib.request.Request(
        served.url + "/v1/chat/completions", method="POST", headers={"Content-Type": "application/json"},
        data=json.dumps({"model": MODEL, "stream": True, "max_tokens": 2000, "temperature": 1.0,
                         "messages": [{"role": "user", "content": "Write a very long essay about the sea."}]}).encode())
    resp = urllib.request.urlopen(req, timeout=60)
    resp.read(200)  # a few chunks arrived: it is generating
    resp.close()
    deadline = time.monotonic() + 15
    processing = None
    while time.monotonic() < deadline:
        _, body = http_get(ep["url"] + "/metrics")
        processing = next(float(x.split()[1]) for x in body.decode().splitlines()
                      if x.startswith("llamacpp:requests_processing "))
        if processing == 0 and _metric(served, "inferplane_client_disconnects_total", model=MODEL) > before:
            break
        time.sleep(0.25)
    assert processing == 0
    assert _metric(served, "inferplane_client_disconnects_total", model=MODEL) == before + 1


def test_streams_without_include_usage_are_still_counted_but_the_client_sees_no_usage_chunk(
        client: openai.OpenAI, served: ServeProcess) -> None:
    before = _metric(served, "inferplane_completion_tokens_total", model=MODEL)
    chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=6, temperature=0,
                                                 stream=True))
    assert all(c.choices for c in chunks), "a usage-only chunk the client did not ask for leaked through"
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"
    assert _metric(served, "inferplane_completion_tokens_total", model=MODEL) == before + 6
