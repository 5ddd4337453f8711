"""Live (opt-in): `inferplane serve` launches a real Modular MAX replica of SmolLM2 on the CPU
and routes the official openai SDK to it.

Opt-in because MAX compiles the model on its first start: 146 s measured on a quiet 2-core box,
809 s on a busy one (load ~9), plus a 48 s install - up to half of CI's 30 minutes. A warm restart
from the compile cache in ``MODULAR_HOME`` takes ~20 s, and the replica holds ~3.1 GB RSS. Needs its own venv and the fp32 HF
folder of SmolLM2 (neither goes into the project's .venv)::

    scripts/install-max.sh                               # .venv-max (modular 26.7.0)
    .venv-vllm/bin/python scripts/convert_smollm2_hf.py  # ~/.cache/inferplane/models/smollm2-hf
    INFERPLANE_LIVE_MAX=1 pytest tests/integration/runtimes/test_max_live.py

``INFERPLANE_MAX_VENV`` names the venv (default ``.venv-max``), ``INFERPLANE_MAX_MODEL`` the HF
folder, ``INFERPLANE_MAX_HOME`` the compile cache (default ``~/.cache/inferplane/modular``).
Skipped, with the reason, unless ``INFERPLANE_LIVE_MAX=1`` and all of them are there.

The replica gets ``OTEL_SDK_DISABLED=true`` rather than ``MAX_SERVE_DISABLE_TELEMETRY=1``: the
latter also switches off MAX's Prometheus endpoint, the former only the remote export. Its
metrics port (``MAX_SERVE_METRICS_ENDPOINT_PORT``) is a free one, not the default 8001.
Recorded behaviour: tests/fixtures/max/live/RECORDED.md.
"""

from __future__ import annotations

import os
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

from helpers import ServeProcess, free_port, start_serve

REPO = Path(__file__).resolve().parents[3]
MAX_VENV = Path(os.environ.get("INFERPLANE_MAX_VENV", REPO / ".venv-max"))
MAX_BIN = MAX_VENV / "bin" / "max"
HF_MODEL = Path(
    os.environ.get("INFERPLANE_MAX_MODEL", Path.home() / ".cache/inferplane/models/smollm2-hf")
)
MODULAR_HOME = Path(
    os.environ.get("INFERPLANE_MAX_HOME", Path.home() / ".cache/inferplane/modular")
)
NAME = "smollm2-max"
MESSAGES = [{"role": "user", "content": "Name three colours of the rainbow."}]
# cold start: the compile takes minutes (146 s measured here, ~14 min reported under load)
READY_TIMEOUT_S = float(os.environ.get("INFERPLANE_MAX_READY_TIMEOUT", 1800))


def _skip_reason() -> str | None:
    if os.environ.get("INFERPLANE_LIVE_MAX") != "1":
        return (
            "opt-in: set INFERPLANE_LIVE_MAX=1 (MAX compiles SmolLM2 for minutes on its first "
            "start; a warm restart takes ~20 s)"
        )
    if not os.access(MAX_BIN, os.X_OK):
        return f"no MAX venv at {MAX_VENV} (run scripts/install-max.sh or set INFERPLANE_MAX_VENV)"
    if not (HF_MODEL / "config.json").is_file() or not any(HF_MODEL.glob("*.safetensors")):
        return (
            f"no fp32 HF folder at {HF_MODEL} (run `.venv-vllm/bin/python "
            "scripts/convert_smollm2_hf.py` or set INFERPLANE_MAX_MODEL)"
        )
    return None


_REASON = _skip_reason()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.live_max,
    pytest.mark.slow,
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
]


@pytest.fixture(scope="module")
def max_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("max")
    MODULAR_HOME.mkdir(parents=True, exist_ok=True)
    config = {
        "gateway": {"scrape_interval_s": 1.0, "ready_timeout_s": READY_TIMEOUT_S},
        "deployments": [
            {
                "name": NAME,
                "runtime": "max",
                "model": str(HF_MODEL),
                "replicas": 1,
                "dtype": "float32",
                "max_concurrent_sequences": 4,
                "context_length_tokens": 2048,
                "executable": str(MAX_BIN),
                "env": {
                    "MODULAR_HOME": str(MODULAR_HOME),
                    "HF_HUB_OFFLINE": "1",
                    "OTEL_SDK_DISABLED": "true",
                    "MAX_SERVE_METRICS_ENDPOINT_PORT": str(free_port()),
                },
            }
        ],
    }
    path = tmp / "max.yaml"
    path.write_text(yaml.safe_dump(config))
    sp = start_serve(["--config", str(path)], tmp, ready_timeout=READY_TIMEOUT_S + 60)
    try:
        yield sp
    finally:
        sp.stop(timeout=60)


@pytest.fixture(scope="module")
def client(max_served: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=max_served.url + "/v1", api_key="unused", max_retries=0, timeout=300
    )


def test_models_lists_the_max_deployment(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [NAME]


def test_chat_plain_and_streamed_agree_at_temperature_zero(client: openai.OpenAI) -> None:
    check_plain_and_stream_agree(client, NAME, MESSAGES)


def test_max_tokens_is_respected(client: openai.OpenAI) -> None:
    check_max_tokens(client, NAME, MESSAGES)


def test_metrics_show_normalized_max_endpoint_stats(max_served: ServeProcess, client: openai.OpenAI) -> None:
    check_normalized_stats(max_served, client, NAME, "max")


def test_stop_leaves_no_max_process(max_served: ServeProcess) -> None:
    check_stop_leaves_nothing(max_served, "max")
