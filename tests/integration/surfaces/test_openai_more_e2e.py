"""End to end: embeddings, models.retrieve, the Responses API and tool gating, through a real
`inferplane serve` of SmolLM2 on the embedded runtime, with the official openai SDK (sync and
async) and LangChain's ChatOpenAI / OpenAIEmbeddings.

Three deployments of the same GGUF: `smollm2` (chat; its own template cannot render tools),
`smollm2-embed` (embeddings: true, llama.cpp's embedding mode), `smollm2-tools` (chat with a
Hermes-style template that renders tools).
"""

from __future__ import annotations

import asyncio
import base64
import math
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from helpers import ServeProcess, alive, start_serve

pytestmark = pytest.mark.integration

CHAT, EMBED, TOOLS = "smollm2", "smollm2-embed", "smollm2-tools"
TEMPLATE = Path(__file__).parents[2] / "fixtures" / "embedded" / "tools_chat_template.jinja"
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("oai")
    one = {"runtime": "embedded", "model": "smollm2", "replicas": 1, "max_concurrent_sequences": 2,
           "context_length_tokens": 2048, "threads": 1}
    cfg = {"deployments": [
        {"name": CHAT, **one},
        {"name": EMBED, **one, "embeddings": True},
        {"name": TOOLS, **one, "extra_args": ["--chat-template-file", str(TEMPLATE)]},
    ]}
    path = tmp / "oai.yaml"
    path.write_text(yaml.safe_dump(cfg))
    sp = start_serve(["--config", str(path)], tmp)  # /ready: every deployment has a ready replica
    try:
        yield sp
    finally:
        pids = sp.runtime_pids()
        code = sp.stop()
        assert code == 0, sp.log()
        assert not [p for p in pids if alive(p)], f"orphans left: {pids}"


@pytest.fixture(scope="module")
def client(served: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def aclient(served: ServeProcess) -> Callable[[], openai.AsyncOpenAI]:
    """A fresh async client per event loop (each test runs its own asyncio.run)."""
    return lambda: openai.AsyncOpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def _norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


# -- embeddings ------------------------------------------------------------------------------------


def test_embeddings_batch_keeps_order_and_width(client: openai.OpenAI) -> None:
    texts = ["red", "a long sentence about the weather in Paris", "red"]
    resp = client.embeddings.create(model=EMBED, input=texts)
    assert [d.index for d in resp.data] == [0, 1, 2]
    widths = {len(d.embedding) for d in resp.data}
    assert len(widths) == 1 and widths.pop() == 576  # SmolLM2-135M's hidden size
    assert resp.data[0].embedding == pytest.approx(resp.data[2].embedding)  # same text, same vector
    assert resp.data[0].embedding != pytest.approx(resp.data[1].embedding)
    assert resp.usage.prompt_tokens > 0 and resp.model == EMBED


def test_embeddings_float_and_base64_agree(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(model=EMBED, input="hello", encoding_format="float").data[0].embedding
    raw = client.embeddings.with_raw_response.create(model=EMBED, input="hello", encoding_format="base64")
    b64 = raw.http_response.json()["data"][0]["embedding"]
    assert isinstance(b64, str)
    decoded = struct.unpack(f"<{len(floats)}f", base64.b64decode(b64))
    assert list(decoded) == pytest.approx(floats, rel=1e-5, abs=1e-6)
    assert _norm(floats) > 0


def test_embeddings_from_token_ids(client: openai.OpenAI) -> None:
    resp = client.embeddings.create(model=EMBED, input=[[1, 2, 3], [4, 5]])
    assert len(resp.data) == 2 and len(resp.data[0].embedding) == 576


def test_dimensions_the_runtime_cannot_honour_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=EMBED, input="x", dimensions=64)
    assert e.value.body["param"] == "dimensions" and e.value.body["code"] == "unsupported_value"


def test_chat_deployment_refuses_embeddings_naming_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=CHAT, input="x")
    assert "embeddings: true" in e.value.message


def test_embeddings_deployment_refuses_chat_saying_so(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=EMBED, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert "embeddings" in e.value.message and e.value.status_code == 400


def test_embeddings_async(aclient: Callable[[], openai.AsyncOpenAI]) -> None:
    async def go() -> list[int]:
        async with aclient() as c:
            rs = await asyncio.gather(*(c.embeddings.create(model=EMBED, input=f"text {i}") for i in range(4)))
        return [len(r.data[0].embedding) for r in rs]
    assert asyncio.run(go()) == [576] * 4


# -- models ----------------------------------------------------------------------------------------


def test_models_retrieve_and_unknown_is_openai_404(client: openai.OpenAI) -> None:
    m = client.models.retrieve(EMBED)
    assert (m.id, m.object, m.owned_by) == (EMBED, "model", "inferplane") and m.created > 0
    assert {x.id for x in client.models.list()} == {CHAT, EMBED, TOOLS}
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("no-such-model")
    assert e.value.body["code"] == "model_not_found"


# -- responses -------------------------------------------------------------------------------------


def test_responses_plain(client: openai.OpenAI) -> None:
    r = client.responses.create(model=CHAT, instructions="Answer briefly.", input="Name a colour.",
                                max_output_tokens=16, temperature=0)
    assert r.object == "response" and r.id.startswith("resp_")
    assert r.output_text.strip()
    assert r.status in ("completed", "incomplete")
    assert r.usage is not None and 1 <= r.usage.output_tokens <= 16
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens


def test_responses_stream_matches_plain_at_temperature_zero(client: openai.OpenAI) -> None:
    kw = dict(model=CHAT, input=[{"role": "user", "content": "Name a colour."}], max_output_tokens=12,
              temperature=0)
    plain = client.responses.create(**kw)
    events = list(client.responses.create(stream=True, **kw))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == plain.output_text
    assert events[-1].response.output_text == text
    assert events[-1].response.usage.output_tokens == plain.usage.output_tokens


def test_responses_async_stream(aclient: Callable[[], openai.AsyncOpenAI]) -> None:
    async def go() -> str:
        async with aclient() as c:
            stream = await c.responses.create(model=CHAT, input="Say hi.", max_output_tokens=8, stream=True)
            return "".join([e.delta async for e in stream if e.type == "response.output_text.delta"])
    assert asyncio.run(go()).strip()


def test_responses_refuse_what_needs_state(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=CHAT, input="hi", previous_response_id="resp_123")
    assert e.value.body["param"] == "previous_response_id"


# -- tools -----------------------------------------------------------------------------------------


def test_tools_on_a_template_that_cannot_render_them_are_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "Weather in Paris?"}],
                                       tools=[WEATHER], tool_choice="required", max_tokens=8)
    assert e.value.body["param"] == "tools" and e.value.body["code"] == "unsupported_value"
    assert "chat template" in e.value.message


def test_tool_choice_none_still_answers(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "hi"}], tools=[WEATHER],
                                       tool_choice="none", max_tokens=4)
    assert r.choices[0].message.content


def test_tools_pass_through_where_the_template_renders_them(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=TOOLS, messages=[{"role": "user", "content": "Weather in Paris?"}],
                                       tools=[WEATHER], max_tokens=48, temperature=0)
    msg = r.choices[0].message
    assert msg.content or msg.tool_calls  # the model may answer or call; llama.cpp parsed either way
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=TOOLS, messages=[{"role": "user", "content": "Weather?"}],
                                       tools=[WEATHER], tool_choice="required", max_tokens=8)
    assert e.value.body["param"] == "tool_choice" and e.value.body["code"] == "unsupported_value"


def test_responses_tools_are_gated_the_same_way(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=CHAT, input="Weather?", tools=[{"type": "function", "name": "get_weather",
                                                                       "parameters": {"type": "object"}}])
    assert e.value.body["param"] == "tools"


# -- LangChain -------------------------------------------------------------------------------------


def test_langchain_chat_and_embeddings(served: ServeProcess) -> None:
    from langchain_openai import ChatOpenAI, OpenAIEmbeddings

    base = served.url + "/v1"
    chat = ChatOpenAI(model=CHAT, base_url=base, api_key="unused", max_tokens=12, temperature=0, max_retries=0,
                      http_client=httpx.Client(trust_env=False))
    assert chat.invoke("Name a colour.").content.strip()
    assert "".join(c.content for c in chat.stream("Name a colour.")).strip()
    # check_embedding_ctx_length=False: send strings (the default would tokenize with tiktoken, which downloads)
    emb = OpenAIEmbeddings(model=EMBED, base_url=base, api_key="unused", check_embedding_ctx_length=False,
                           max_retries=0, http_client=httpx.Client(trust_env=False))
    vecs = emb.embed_documents(["red", "blue"])
    assert len(vecs) == 2 and all(len(v) == 576 for v in vecs)
    assert emb.embed_query("red") == pytest.approx(vecs[0], rel=1e-4, abs=1e-5)
