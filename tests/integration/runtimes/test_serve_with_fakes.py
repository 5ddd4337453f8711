"""`inferplane serve --config` launches each non-live runtime (a replaying fake) through its adapter.

For SGLang, LMDeploy, TensorRT-LLM, TGI, MLC-LLM and Ollama (from-source recordings) and vLLM and
MAX (their live recordings, replayed at a tenth of the recorded timing): the deployment's
``executable`` points to a wrapper that runs tests/fakes/replay_runtime.py, which records
the argv and environment it was started with. The test asserts that argv is exactly the
adapter's launch spec, that readiness was reached, and that the official `openai` SDK gets
chat completions (streamed and not) and the runtime's recorded error in OpenAI's shape -
through the Ollama dialect for Ollama.
"""

from __future__ import annotations

import json
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml

from helpers import ServeProcess, alive, start_serve
from inferplane.config.models import parse_config
from inferplane.runtimes import Resources, get_adapter

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).parents[3]
FAKE = ROOT / "tests" / "fakes" / "replay_runtime.py"
FIXTURES = ROOT / "tests" / "fixtures"
RUNTIMES = ("sglang", "lmdeploy", "trtllm", "tgi", "mlc", "ollama", "vllm", "max", "llamacpp")
FOLDER = {"vllm": "vllm/live", "max": "max/live", "llamacpp": "embedded/live"}
"""Rows that run here are replayed from their live recordings (llama-server: the same server code,
recorded through xllamacpp)."""
MODEL = {"ollama": "smollm2:135m", "mlc": "/models/SmolLM2-135M-Instruct-q4f16_1-MLC"}
MSGS = [{"role": "user", "content": "hi"}]


def _recorded(runtime: str) -> tuple[str, int]:
    """(text, completion tokens) of the row's recorded chat answer."""
    chat = json.loads((FIXTURES / FOLDER.get(runtime, runtime) / "chat.json").read_text())
    return chat["choices"][0]["message"]["content"], chat["usage"]["completion_tokens"]


def _deployment(runtime: str, tmp: Path) -> dict:
    wrapper = tmp / f"fake-{runtime}"
    folder = FIXTURES / FOLDER.get(runtime, runtime)
    if runtime == "llamacpp":  # a real GGUF (serve checks its header first; the fake never reads it)
        from inferplane.models import ModelStore

        MODEL["llamacpp"] = str(ModelStore().resolve("smollm2", fetch=False))  # scripts/test.sh pulls it
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "{folder}" "$0" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return {
        "name": f"m-{runtime}", "runtime": runtime, "model": MODEL.get(runtime, "/models/smollm2"),
        "replicas": 1, "executable": str(wrapper), "max_concurrent_sequences": 3,
        "context_length_tokens": 2048, "ready_timeout_s": 60,
        "env": {"REPLAY_ARGV_FILE": str(tmp / f"{runtime}.argv.json"), "REPLAY_TIME_SCALE": "0.1",
                "REPLAY_REQUESTS_FILE": str(tmp / f"{runtime}.requests.jsonl")},
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, dict, Path]]:
    tmp = tmp_path_factory.mktemp("fakes")
    cfg = {"gateway": {"scrape_interval_s": 0.5, "ready_timeout_s": 60},
           "deployments": [_deployment(r, tmp) for r in RUNTIMES]}
    path = tmp / "deploy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    sp = start_serve(["--config", str(path)], tmp, ready_timeout=90)
    try:
        yield sp, cfg, tmp
    finally:
        pids = sp.runtime_pids()
        assert sp.stop() == 0, sp.log()
        assert not [p for p in pids if alive(p)], f"orphans left: {pids}"


def _client(sp: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=20)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_runtime_is_launched_with_exactly_its_launch_spec(served, runtime: str) -> None:
    _, cfg, tmp = served
    recorded = json.loads((tmp / f"{runtime}.argv.json").read_text())
    dep = parse_config({"deployments": [d for d in cfg["deployments"] if d["runtime"] == runtime]}).deployments[0]
    if runtime == "ollama":
        port = int(recorded["env"]["OLLAMA_HOST"].rsplit(":", 1)[1])
    else:
        argv = recorded["argv"]
        port = int(argv[argv.index("--server-port" if runtime == "lmdeploy" else "--port") + 1])
    if runtime == "max":  # the metrics port is a second free port the supervisor picked
        spec_env = recorded["env"]
        assert "MAX_SERVE_METRICS_ENDPOINT_PORT" in spec_env
    threads = None
    if "--threads" in recorded["argv"]:  # the supervisor grants llama-server its thread count
        threads = int(recorded["argv"][recorded["argv"].index("--threads") + 1])
    spec = get_adapter(runtime).launch_spec(dep, port, Resources(threads=threads))
    assert recorded["argv"] == list(spec.argv)
    for path, text in spec.files:  # TensorRT-LLM: the YAML that turns its Prometheus metrics on
        assert Path(path).read_text() == text and "return_perf_metrics: true" in text
    for key, value in spec.env.items():
        if key.startswith("OLLAMA_"):
            assert recorded["env"][key] == value


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_chat_plain_and_streamed_through_the_gateway(served, runtime: str) -> None:
    sp, _, _ = served
    client = _client(sp)
    model = f"m-{runtime}"
    text, tokens = _recorded(runtime)
    r = client.chat.completions.create(model=model, messages=MSGS)
    assert r.choices[0].message.content == text
    finish = r.choices[0].finish_reason
    assert finish in ("stop", "length")
    assert r.usage is not None and r.usage.completion_tokens == tokens

    chunks = list(client.chat.completions.create(model=model, messages=MSGS, stream=True,
                                                 stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [finish]
    assert [c.usage.completion_tokens for c in chunks if c.usage] == [tokens]

    plain = list(client.chat.completions.create(model=model, messages=MSGS, stream=True))
    assert all(c.choices for c in plain), "a usage-only chunk was sent to a client that did not ask for one"


# Ollama: no recorded max-tokens error; llama-server: none either (it answered 200); MAX accepts any max_tokens (live: 200 for 100000) and its
# recorded errors need a model name the gateway never sends.
# llama-server accepts any name and clamps max_tokens: the recording has no error for these requests.
@pytest.mark.parametrize("runtime", [r for r in RUNTIMES if r not in ("ollama", "max", "llamacpp")])
def test_runtime_errors_reach_clients_in_openai_shape(served, runtime: str) -> None:
    sp, _, _ = served
    folder = FIXTURES / FOLDER.get(runtime, runtime)
    name = "error_max_tokens_too_large.json" if runtime in FOLDER else "error.json"
    error = json.loads((folder / name).read_text())
    body = error["body"]
    if isinstance(body, str):  # MLC-LLM: JSON inside a JSON string
        body = json.loads(body)
    message = body["error"] if isinstance(body.get("error"), str) else body.get("message") or body["error"]["message"]
    with pytest.raises(openai.APIStatusError) as exc:
        _client(sp).chat.completions.create(model=f"m-{runtime}", messages=MSGS, max_tokens=9000)
    assert exc.value.status_code == error["status"]
    # the SDK found {"error": {"message", "type", ...}}: .body is the inner object
    # the runtime's message, continued with the setting behind it where there is one (docs/reliability.md)
    assert isinstance(exc.value.body, dict) and exc.value.body["message"].startswith(message.rstrip(" ."))
    assert isinstance(exc.value.type, str) and exc.value.type


def test_ollama_gets_native_requests_with_its_option_names(served) -> None:
    sp, _, tmp = served
    client = _client(sp)
    r = client.chat.completions.create(model="m-ollama", messages=MSGS, max_tokens=7, temperature=0.2, stop="\n",
                                       seed=3, response_format={"type": "json_object"})
    assert r.model == "m-ollama" and r.choices[0].message.content == _recorded("ollama")[0]
    sent = [json.loads(line) for line in (tmp / "ollama.requests.jsonl").read_text().splitlines()][-1]
    assert sent["path"] == "/api/chat"
    assert sent["body"]["model"] == "smollm2:135m"
    assert sent["body"]["options"] == {"num_predict": 7, "temperature": 0.2, "stop": ["\n"], "seed": 3}
    assert sent["body"]["format"] == "json"

    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="m-ollama", messages=MSGS, logprobs=True)
    assert exc.value.param == "logprobs"


def test_metrics_of_each_runtime_reach_the_endpoint_stats(served) -> None:
    sp, _, _ = served
    deadline = time.monotonic() + 15
    while True:
        stats = {e["deployment"]: e.get("stats") or {} for e in sp.endpoints()}
        if stats.get("m-sglang", {}).get("running") is not None or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert stats["m-sglang"]["running"] == 3 and stats["m-sglang"]["waiting"] == 1
    assert stats["m-lmdeploy"]["kv_cache_usage"] == pytest.approx(0.12)
    assert stats["m-tgi"]["prompt_tokens"] == 12450

