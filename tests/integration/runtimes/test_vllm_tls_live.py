"""Live: a real vLLM (CPU build) serving HTTPS with an API key, behind `inferplane serve` as an endpoint.

vLLM is started here, as a user would run it on another machine: ``--ssl-certfile/--ssl-keyfile``
with a certificate from a CA made in the test, and its key in ``VLLM_API_KEY`` (vLLM's own variable,
so the key is not on its command line). The gateway lists it under ``endpoints:`` with ``ca_file``
and ``api_key_env``. Needs the vLLM venv and model of test_vllm_live.py (skipped otherwise);
vLLM takes ~1 min to start on 2 cores and holds ~3.7 GiB.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml
from test_vllm_live import _REASON, HF_MODEL, NAME, VLLM_PYTHON

from helpers import ServeProcess, free_port, http_get, start_serve
from tls_certs import Certs, make_certs

KEY = "sk-vllm-live-Rt5Yq"
MESSAGES = [{"role": "user", "content": "Name three colours of the rainbow."}]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.live_vllm,
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def vllm_https(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("vllm-tls")
    port = free_port()
    log = (tmp / "vllm.log").open("wb")
    proc = subprocess.Popen(
        [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(HF_MODEL),
         "--served-model-name", NAME, "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "2048",
         "--dtype", "float32", "--enforce-eager", "--max-num-seqs", "2",
         "--ssl-certfile", str(certs.cert), "--ssl-keyfile", str(certs.key)],
        env={**os.environ, "VLLM_TARGET_DEVICE": "cpu", "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1",
             "VLLM_API_KEY": KEY},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"https://127.0.0.1:{port}"
    ctx = ssl.create_default_context(cafile=certs.ca)
    try:
        deadline = time.monotonic() + 600
        while True:
            assert proc.poll() is None, (tmp / "vllm.log").read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "vLLM not ready after 600 s"
            try:
                with urllib.request.urlopen(url + "/health", timeout=2, context=ctx) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def _front(tmp_path: Path, url: str, ca: Path, key: str) -> ServeProcess:
    cfg = tmp_path / "remote.yaml"
    cfg.write_text(yaml.safe_dump({
        "gateway": {"scrape_interval_s": 0.5, "queue_timeout_s": 1},
        "deployments": [{"name": "remote-llama", "runtime": "vllm", "replicas": 0,
                         "endpoints": [{"url": url, "ca_file": str(ca), "api_key_env": "REMOTE_VLLM_KEY"}]}]}))
    return start_serve(["--config", str(cfg)], tmp_path, wait_ready=False, env={"REMOTE_VLLM_KEY": key})


def _wait(sp: ServeProcess, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and sp.proc.poll() is None:
        if text in sp.log():
            return sp.log()
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in the log:\n{sp.log()}")


def test_the_openai_client_gets_answers_from_vllm_over_https_with_its_key(
        vllm_https: str, certs: Certs, tmp_path: Path) -> None:
    sp = _front(tmp_path, vllm_https, certs.ca, KEY)
    try:
        _wait(sp, f"remote-llama: 1 of 1 endpoint(s) ready (vllm at {vllm_https}, model '{NAME}')")
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="unused", max_retries=0, timeout=300)
        r = client.chat.completions.create(model="remote-llama", messages=MESSAGES, max_tokens=8, temperature=0)
        assert r.choices[0].message.content and r.model == NAME
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="remote-llama", messages=MESSAGES, max_tokens=8, temperature=0, stream=True) if c.choices)
        assert text == r.choices[0].message.content
        deadline = time.monotonic() + 30  # its /metrics, scraped over TLS, fill the endpoint's stats
        while sp.endpoints()[0]["stats"].get("kv_cache_tokens") is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert sp.endpoints()[0]["stats"]["kv_cache_tokens"]
        seen = [http_get(sp.url + p)[1].decode() for p in ("/admin/endpoints", "/admin/deployments", "/metrics")]
    finally:
        assert sp.stop() == 0, sp.log()
    assert all(KEY not in t for t in seen) and KEY not in sp.log()


def test_vllm_refusing_the_key_keeps_it_out_of_the_pool(vllm_https: str, certs: Certs, tmp_path: Path) -> None:
    sp = _front(tmp_path, vllm_https, certs.ca, "sk-not-the-key")
    try:
        _wait(sp, "it does not accept the API key in $REMOTE_VLLM_KEY")
        assert not sp.endpoints()[0]["ready"]
        assert http_get(sp.url + "/ready")[0] == 503
    finally:
        assert sp.stop() == 0, sp.log()


def test_without_the_ca_vllm_is_not_trusted(vllm_https: str, certs: Certs, tmp_path: Path) -> None:
    sp = _front(tmp_path, vllm_https, certs.other_ca, KEY)
    try:
        _wait(sp, "failed its health check: certificate verify failed")
        ep = sp.endpoints()[0]
        assert not ep["ready"] and "certificate verify failed" in ep["last_error"]
    finally:
        assert sp.stop() == 0, sp.log()
