"""A server inferplane did not start, which knows the model by another name than the deployment's.

The upstream is the vLLM replay fake (tests/fakes/replay_runtime.py over tests/fixtures/vllm)
started with ``--served-model-name smollm2``: like vLLM it lists only that name on
``/v1/models`` and answers any other ``model`` with its recorded 404. Clients use the
deployment's name, ``remote-llama``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml
from aiohttp import web

from helpers import ServeProcess, free_port, http_get, start_serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).parents[3]
MSGS = [{"role": "user", "content": "hi"}]




def _serve(tmp_path: Path, dep: dict) -> ServeProcess:
    path = tmp_path / "deploy.yaml"
    # queue_timeout_s: a request that finds no ready endpoint is held that long, then gets 503
    path.write_text(yaml.safe_dump({"gateway": {"scrape_interval_s": 0.3, "queue_timeout_s": 2},
                                    "deployments": [dep]}))
    return start_serve(["--config", str(path)], tmp_path, wait_ready=False)


def _wait_log(sp: ServeProcess, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = sp.log()
        if text in log:
            return log
        if sp.proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the log:\n{sp.log()}")


def test_the_upstream_name_is_discovered_and_requests_are_rewritten(tmp_path: Path, vllm_fake: str) -> None:
    sp = _serve(tmp_path, {"name": "remote-llama", "runtime": "openai", "replicas": 0,
                           "endpoints": [{"url": vllm_fake}]})
    try:
        log = _wait_log(sp, "remote-llama: 1 of 1 endpoint(s) ready")
        assert f"vllm at {vllm_fake}, model 'smollm2'" in log
        assert "0/0 local replica" not in log
        assert http_get(sp.url + "/ready")[0] == 200
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=30)
        r = client.chat.completions.create(model="remote-llama", messages=MSGS, max_tokens=8)
        assert r.choices[0].message.content == "Hello! How can I help you today?"
        assert r.model == "smollm2"  # the fake echoes the name it was asked for: the rewritten one
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="remote-llama", messages=MSGS, max_tokens=8, stream=True) if c.choices)
        assert text == "Hello! How can I help you today?"
        # a body whose messages come first and hold the word "model" in quotes, as the SDK sends it
        r = client.chat.completions.create(model="remote-llama", max_tokens=8,
                                           messages=[{"role": "user", "content": 'say "model": yes'}])
        assert r.choices[0].message.content
    finally:
        assert sp.stop() == 0, sp.log()


def test_a_configured_name_the_upstream_does_not_serve_keeps_it_out_of_the_pool(tmp_path: Path,
                                                                                vllm_fake: str) -> None:
    sp = _serve(tmp_path, {"name": "remote-llama", "runtime": "openai", "replicas": 0, "upstream_model": "nope",
                           "endpoints": [{"url": vllm_fake}]})
    try:
        log = _wait_log(sp, "remote-llama: 0 of 1 endpoint(s) ready yet")
        assert "it does not serve 'nope' (it serves: smollm2)" in log
        assert http_get(sp.url + "/ready")[0] == 503
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=30)
        with pytest.raises(openai.APIStatusError) as exc:
            client.chat.completions.create(model="remote-llama", messages=MSGS, max_tokens=8)
        assert exc.value.status_code == 503
        assert exc.value.response.headers.get("retry-after")
    finally:
        assert sp.stop() == 0, sp.log()


def test_a_configured_name_is_used(tmp_path: Path, vllm_fake: str) -> None:
    sp = _serve(tmp_path, {"name": "remote-llama", "runtime": "openai", "replicas": 0, "upstream_model": "smollm2",
                           "endpoints": [{"url": vllm_fake}]})
    try:
        _wait_log(sp, "remote-llama: 1 of 1 endpoint(s) ready")
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=30)
        assert client.chat.completions.create(model="remote-llama", messages=MSGS, max_tokens=8).model == "smollm2"
    finally:
        assert sp.stop() == 0, sp.log()


@pytest.fixture
def two_model_server() -> Iterator[str]:
    """An OpenAI-compatible server listing two models (vLLM does with two --served-model-name values)."""
    import asyncio

    async def models(_r: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": "llama-8b", "object": "model", "created": 0, "owned_by": "vllm"},
            {"id": "qwen-7b", "object": "model", "created": 0, "owned_by": "vllm"}]})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def test_several_models_and_none_chosen_refuses_to_start(tmp_path: Path, two_model_server: str) -> None:
    sp = _serve(tmp_path, {"name": "remote-llama", "runtime": "openai", "replicas": 0,
                           "endpoints": [{"url": two_model_server}]})
    code = sp.proc.wait(60)
    log = sp.log()
    assert code == 2, log
    assert "several models (llama-8b, qwen-7b)" in log and "upstream_model" in log
    assert "gateway listening" not in log
