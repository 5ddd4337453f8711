"""An upstream that refuses the gateway's credentials, behind `inferplane serve`, seen through
each client API's official SDK: a 502 that names the endpoint and where its key comes from
(the client's own key was fine, so never a 401), and one log line per endpoint for the operator.

The upstreams are the fake OpenAI server (inferplane.bench.fake_server) started with a key and,
as llama-server does with ``--api-key``, the model list left open: the health check passes, and
only completions are refused (401 unless ``Authorization: Bearer <key>``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import ollama
import openai
import pytest
import yaml

from helpers import ServeProcess, http_get, start_serve
from inferplane.bench.fake_server import FakeOpenAIServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

KEY = "sk-upstream-Pq40nTe2"
WRONG = "sk-wrong-Lr93xV1a"
MSGS = [{"role": "user", "content": "hi"}]


def _upstream() -> FakeOpenAIServer:
    return FakeOpenAIServer(api_key=KEY, key_free_paths=("/v1/models",), model="fake", text=("hel", "lo"),
                            ttft_s=0.0, itl_s=0.0)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, FakeOpenAIServer,
                                                                      FakeOpenAIServer]]:
    tmp = tmp_path_factory.mktemp("creds")
    wrong, keyless = _upstream(), _upstream()
    with wrong.in_thread(), keyless.in_thread():
        path = tmp / "deploy.yaml"
        path.write_text(yaml.safe_dump({
            "gateway": {"scrape_interval_s": 0.5, "queue_timeout_s": 1},
            "deployments": [
                {"name": "wrongkey", "runtime": "openai", "replicas": 0,
                 "endpoints": [{"url": wrong.url, "api_key_env": "UPSTREAM_KEY"}]},
                {"name": "nokey", "runtime": "openai", "replicas": 0, "endpoints": [{"url": keyless.url}]},
            ]}))
        sp = start_serve(["--config", str(path)], tmp, env={"UPSTREAM_KEY": WRONG})
        try:
            yield sp, wrong, keyless
        finally:
            assert sp.stop() == 0, sp.log()
    assert WRONG not in sp.log() and KEY not in sp.log()


def _ids(sp: ServeProcess) -> dict[str, str]:
    return {e["deployment"]: e["id"] for e in sp.endpoints()}


def test_openai_client_gets_a_502_naming_the_variable_not_a_401(served) -> None:  # type: ignore[no-untyped-def]
    sp, wrong, _ = served
    client = openai.OpenAI(base_url=sp.url + "/v1", api_key="client-key", max_retries=0, timeout=30)
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as err:
            client.chat.completions.create(model="wrongkey", messages=MSGS, max_tokens=8, stream=stream)
        assert err.value.status_code == 502  # the client's key is not what is wrong
        assert not isinstance(err.value, openai.AuthenticationError)
        body = err.value.body
        assert isinstance(body, dict) and body["code"] == "upstream_credentials", body
        msg = err.value.message
        assert "$UPSTREAM_KEY" in msg and "api_key_env" in msg and _ids(sp)["wrongkey"] in msg and wrong.url in msg
        assert WRONG not in msg and KEY not in msg


def test_no_key_configured_says_so_through_anthropic_and_ollama(served) -> None:  # type: ignore[no-untyped-def]
    sp, _, keyless = served
    claude = anthropic.Anthropic(base_url=sp.url, api_key="client-key", max_retries=0, timeout=30)
    with pytest.raises(anthropic.APIStatusError) as err:
        claude.messages.create(model="nokey", max_tokens=8, messages=MSGS)
    assert err.value.status_code == 502 and not isinstance(err.value, anthropic.AuthenticationError)
    assert isinstance(err.value.body, dict) and err.value.body["type"] == "error"
    assert "none is configured" in err.value.message and "api_key_env" in err.value.message
    with pytest.raises(ollama.ResponseError) as oerr:
        ollama.Client(host=sp.url, timeout=30).chat(model="nokey", messages=MSGS)
    assert oerr.value.status_code == 502
    assert "none is configured" in oerr.value.error and _ids(sp)["nokey"] in oerr.value.error
    assert keyless.url in oerr.value.error


def test_the_operator_sees_one_log_line_per_endpoint_and_the_metrics(served) -> None:  # type: ignore[no-untyped-def]
    sp, _, _ = served
    client = openai.OpenAI(base_url=sp.url + "/v1", api_key="client-key", max_retries=0, timeout=30)
    for model in ("wrongkey", "nokey") * 3:
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model=model, messages=MSGS, max_tokens=8)
    log = sp.log()
    ids = _ids(sp)
    assert log.count(f"endpoint {ids['wrongkey']} (") == 1, log  # once, not per request
    assert log.count(f"endpoint {ids['nokey']} (") == 1, log
    eps = {e["id"]: e for e in sp.endpoints()}
    assert eps[ids["wrongkey"]]["ready"]  # a config fault: not taken out as if it were down
    metrics = http_get(sp.url + "/metrics")[1].decode()
    assert 'route="chat",status="502"' in metrics
    assert f'endpoint="{ids["wrongkey"]}",kind="credentials_refused"' in metrics
    texts = [json.dumps(sp.endpoints()), metrics]
    assert all(WRONG not in t and KEY not in t for t in texts)
