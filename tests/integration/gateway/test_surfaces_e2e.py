"""End to end: the Anthropic and Ollama APIs of a real `inferplane serve` (SmolLM2 on the embedded
llama.cpp runtime), driven by the official ``anthropic`` and ``ollama`` clients - and all three
client APIs against one deployment at the same time."""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import anthropic
import ollama
import openai
import pytest

from helpers import ServeProcess, http_get

pytestmark = pytest.mark.integration

MODEL = "smollm2"
QUESTION = "Name three colours of the rainbow."
GREEDY = {"temperature": 0}  # anthropic SDK 2.x takes sampling fields only as extra_body


@pytest.fixture(scope="module")
def claude(served: ServeProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=served.url, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def olla(served: ServeProcess) -> ollama.Client:
    return ollama.Client(host=served.url, timeout=120)


def _post(url: str, body: dict, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json",
                                                                  **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


# -- Anthropic -------------------------------------------------------------------------------------

def test_anthropic_messages_create(claude: anthropic.Anthropic) -> None:
    raw = claude.messages.with_raw_response.create(
        model=MODEL, max_tokens=24, system="You answer briefly.", messages=[{"role": "user", "content": QUESTION}])
    msg = raw.parse()
    assert raw.headers.get("request-id") and msg._request_id == raw.headers["request-id"]
    assert msg.type == "message" and msg.role == "assistant" and msg.model == MODEL
    assert msg.content[0].type == "text" and msg.content[0].text.strip()
    assert msg.stop_reason in ("end_turn", "max_tokens")
    assert msg.usage.input_tokens + (msg.usage.cache_read_input_tokens or 0) > 10
    assert 1 <= msg.usage.output_tokens <= 24


def test_anthropic_stream_matches_the_plain_answer(claude: anthropic.Anthropic) -> None:
    kw = dict(model=MODEL, max_tokens=32, messages=[{"role": "user", "content": QUESTION}], extra_body=GREEDY)
    plain = claude.messages.create(**kw)
    with claude.messages.stream(**kw) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == plain.content[0].text == final.content[0].text
    assert final.stop_reason == plain.stop_reason
    assert final.usage.output_tokens == plain.usage.output_tokens
    # the raw event sequence, as Anthropic sends it
    kinds = [e.type for e in claude.messages.create(stream=True, **kw)]
    assert kinds[:2] == ["message_start", "content_block_start"] and kinds[-2:] == ["message_delta", "message_stop"]


def test_anthropic_models_list(claude: anthropic.Anthropic) -> None:
    models = list(claude.models.list())
    assert [m.id for m in models] == [MODEL] and models[0].type == "model" and models[0].created_at.year >= 2026


def test_anthropic_max_tokens_stop_reason(claude: anthropic.Anthropic) -> None:
    msg = claude.messages.create(model=MODEL, max_tokens=2, messages=[{"role": "user", "content": QUESTION}])
    assert msg.stop_reason == "max_tokens" and msg.usage.output_tokens == 2


def test_anthropic_count_tokens_uses_the_runtimes_tokenizer(claude: anthropic.Anthropic, served: ServeProcess) -> None:
    messages = [{"role": "user", "content": "Count me, please: how many tokens am I?"}]
    raw = claude.messages.with_raw_response.count_tokens(model=MODEL, system="Be brief.", messages=messages)
    assert raw.headers["x-inferplane-token-count"] == "runtime"
    counted = raw.parse().input_tokens
    used = claude.messages.create(model=MODEL, max_tokens=1, system="Be brief.", messages=messages).usage
    assert counted == used.input_tokens + (used.cache_read_input_tokens or 0)


def test_anthropic_errors_have_anthropics_shape(claude: anthropic.Anthropic, served: ServeProcess) -> None:
    with pytest.raises(anthropic.NotFoundError) as exc:
        claude.messages.create(model="no-such-model", max_tokens=4, messages=[{"role": "user", "content": "hi"}])
    assert exc.value.body["type"] == "error" and exc.value.body["error"]["type"] == "not_found_error"
    assert "no-such-model" in exc.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as exc:
        claude.messages.create(model=MODEL, max_tokens=0, messages=[{"role": "user", "content": "hi"}])
    assert exc.value.body["error"]["type"] == "invalid_request_error"
    status, body = _post(served.url + "/v1/messages", {"model": MODEL, "messages": []})
    assert status == 400 and body["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    status, _ = http_get(served.url + "/v1/messages")
    assert status == 405


# -- Ollama ----------------------------------------------------------------------------------------

def test_ollama_chat_plain_and_streamed_agree(olla: ollama.Client) -> None:
    kw = dict(model=MODEL, messages=[{"role": "user", "content": QUESTION}],
              options={"temperature": 0, "seed": 7, "num_predict": 32})
    plain = olla.chat(**kw)
    assert plain.done and plain.done_reason in ("stop", "length") and plain.message.role == "assistant"
    assert plain.message.content.strip()
    assert plain.prompt_eval_count > 10 and 1 <= plain.eval_count <= 32
    assert plain.total_duration > 0 and plain.eval_duration > 0
    parts = list(olla.chat(stream=True, **kw))
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    assert "".join(p.message.content or "" for p in parts) == plain.message.content
    assert parts[-1].eval_count == plain.eval_count and parts[-1].done_reason == plain.done_reason


def test_ollama_generate_and_raw_generate(olla: ollama.Client) -> None:
    out = olla.generate(model=MODEL, prompt=QUESTION, options={"num_predict": 16})
    assert out.done and out.response.strip() and 1 <= out.eval_count <= 16
    parts = list(olla.generate(model=f"{MODEL}:latest", prompt="Once upon a time", raw=True, stream=True,
                               options={"num_predict": 8}))
    assert parts[-1].done and parts[-1].done_reason == "length" and "".join(p.response for p in parts).strip()


def test_ollama_list_show_ps(olla: ollama.Client) -> None:
    names = [m.model for m in olla.list().models]
    assert names == [f"{MODEL}:latest"]
    shown = olla.show(MODEL)
    assert "completion" in shown.capabilities and shown.details.format == "gguf"
    assert [m.model for m in olla.ps().models] == [f"{MODEL}:latest"]


def test_ollama_version_and_errors(olla: ollama.Client, served: ServeProcess) -> None:
    status, body = http_get(served.url + "/api/version")
    assert status == 200 and json.loads(body)["version"]
    with pytest.raises(ollama.ResponseError) as exc:
        olla.chat(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 404 and exc.value.error == "model 'no-such-model' not found"
    status, body = _post(served.url + "/api/chat", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                                                    "format": "yaml", "stream": False})  # the client refuses to send it
    assert status == 400 and body == {"error": "invalid format 'yaml': use \"json\" or a JSON schema object"}
    status, body = http_get(served.url + "/api/nothing-here")
    assert status == 404 and "error" in json.loads(body)


def test_ollama_embed_on_a_chat_deployment_names_the_embeddings_field(olla: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as exc:
        olla.embed(model=MODEL, input=["hello"])
    assert exc.value.status_code == 400 and "embeddings: true" in exc.value.error


# -- all three at once -----------------------------------------------------------------------------

def test_three_client_apis_against_one_deployment_at_the_same_time(
        served: ServeProcess, claude: anthropic.Anthropic, olla: ollama.Client) -> None:
    oai = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    msgs = [{"role": "user", "content": QUESTION}]

    def via_openai() -> str:
        chunks = oai.chat.completions.create(model=MODEL, messages=msgs, max_tokens=16, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    def via_anthropic() -> str:
        with claude.messages.stream(model=MODEL, max_tokens=16, messages=msgs) as s:
            return "".join(s.text_stream)

    def via_ollama() -> str:
        return "".join(p.message.content or "" for p in olla.chat(model=MODEL, messages=msgs, stream=True,
                                                                   options={"num_predict": 16}))

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(f) for f in (via_openai, via_anthropic, via_ollama) * 2]
        answers = [f.result(timeout=300) for f in futures]
    assert all(a.strip() for a in answers), answers
