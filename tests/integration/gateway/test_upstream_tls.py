"""An https:// endpoint that wants an API key, behind `inferplane serve`, and TLS on the gateway's listener.

The upstream is the fake OpenAI server (inferplane.bench.fake_server) serving HTTPS with a
certificate signed by a CA made in the test (tests/tls_certs.py), and, like vLLM started with
``--api-key``, answering 401 on /v1/* without ``Authorization: Bearer <key>``. The key lives in
an environment variable of the `serve` process; the deployment file names only the variable.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx  # the HTTP client the openai SDK is built on (its http_client= type)
import openai
import pytest
import yaml

from helpers import ServeProcess, free_port, http_get, start_serve
from inferplane.bench.fake_server import FakeOpenAIServer
from tls_certs import Certs, make_certs, server_context

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

KEY = "sk-upstream-Zq81mVb3kT0"
"""The upstream's key: must reach the upstream, and nothing else (logs, admin output, errors)."""
MSGS = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def https_upstream(certs: Certs) -> Iterator[FakeOpenAIServer]:
    srv = FakeOpenAIServer(ssl_context=server_context(certs), api_key=KEY, model="fake", text=("hel", "lo"), ttft_s=0.0, itl_s=0.0)
    with srv.in_thread():
        yield srv


def _serve(tmp_path: Path, endpoint: dict, *, env: dict[str, str] | None = None, gateway: dict | None = None,
           wait: bool = False) -> ServeProcess:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump({
        "gateway": {"scrape_interval_s": 0.3, "queue_timeout_s": 1, **(gateway or {})},
        "deployments": [{"name": "remote", "runtime": "openai", "replicas": 0, "endpoints": [endpoint]}],
    }))
    return start_serve(["--config", str(path)], tmp_path, wait_ready=wait, env=env)


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


def _status(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "inferplane", "status", "--url", url, *args],
                          capture_output=True, text=True, timeout=60)


def _admin_texts(sp: ServeProcess) -> list[str]:
    """Everything a client can read about the endpoints and deployments."""
    out = []
    for path in ("/admin/endpoints", "/admin/deployments", "/admin/routing", "/admin/autoscaler", "/metrics",
                 "/v1/models", "/ready"):
        out.append(http_get(sp.url + path)[1].decode())
    return out


def test_an_https_endpoint_with_its_ca_and_key_answers_the_openai_client(
        tmp_path: Path, https_upstream: FakeOpenAIServer, certs: Certs) -> None:
    sp = _serve(tmp_path, {"url": https_upstream.url, "ca_file": str(certs.ca), "api_key_env": "UPSTREAM_KEY"},
                env={"UPSTREAM_KEY": KEY})
    try:
        _wait_log(sp, "remote: 1 of 1 endpoint(s) ready")
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="client-key", max_retries=0, timeout=30)
        r = client.chat.completions.create(model="remote", messages=MSGS, max_tokens=8)
        assert r.choices[0].message.content == "hello"
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="remote", messages=MSGS, max_tokens=8, stream=True) if c.choices)
        assert text == "hello"
        for _ in range(3):  # kept-alive TLS connections are reused, with the key on each request
            assert client.completions.create(model="remote", prompt="x", max_tokens=4).choices[0].text
        assert https_upstream.requests_seen >= 5
        eps = sp.endpoints()
        assert eps[0]["ready"] and eps[0]["last_error"] is None
        assert eps[0]["api_key_from"] == "$UPSTREAM_KEY" and eps[0]["tls"] == f"ca_file {certs.ca}"
        texts = _admin_texts(sp)
    finally:
        assert sp.stop() == 0, sp.log()
    assert all(KEY not in t for t in texts)
    assert KEY not in sp.log()


def test_without_the_ca_the_endpoint_is_not_ready_and_serve_says_why(
        tmp_path: Path, https_upstream: FakeOpenAIServer) -> None:
    sp = _serve(tmp_path, {"url": https_upstream.url, "api_key_env": "UPSTREAM_KEY"}, env={"UPSTREAM_KEY": KEY})
    try:
        log = _wait_log(sp, "remote: 0 of 1 endpoint(s) ready yet")
        assert "certificate verify failed" in log  # the startup line says why
        _wait_log(sp, "failed its health check: certificate verify failed")  # and the checker's log line
        ep = sp.endpoints()[0]
        assert not ep["ready"]
        assert "certificate verify failed" in ep["last_error"]
        assert "ca_file" in ep["last_error"]  # what to set
        assert http_get(sp.url + "/ready")[0] == 503
        status = _status(sp.url)
        assert "why: certificate verify failed" in status.stdout, status
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=30)
        with pytest.raises(openai.APIStatusError) as err:
            client.chat.completions.create(model="remote", messages=MSGS, max_tokens=8)
        assert err.value.status_code == 503
        texts = _admin_texts(sp)
    finally:
        assert sp.stop() == 0, sp.log()
    assert all(KEY not in t for t in texts)
    assert KEY not in sp.log()


def test_a_ca_that_did_not_sign_it_fails_verification_too(
        tmp_path: Path, https_upstream: FakeOpenAIServer, certs: Certs) -> None:
    sp = _serve(tmp_path, {"url": https_upstream.url, "ca_file": str(certs.other_ca), "api_key_env": "UPSTREAM_KEY"},
                env={"UPSTREAM_KEY": KEY})
    try:
        _wait_log(sp, "certificate verify failed")
        assert not sp.endpoints()[0]["ready"]
    finally:
        assert sp.stop() == 0, sp.log()


def test_a_wrong_key_keeps_the_endpoint_out_and_names_the_variable_not_the_key(
        tmp_path: Path, https_upstream: FakeOpenAIServer, certs: Certs) -> None:
    wrong = "sk-wrong-Hc72pLq0"
    sp = _serve(tmp_path, {"url": https_upstream.url, "ca_file": str(certs.ca), "api_key_env": "UPSTREAM_KEY"},
                env={"UPSTREAM_KEY": wrong})
    try:
        log = _wait_log(sp, "remote: 0 of 1 endpoint(s) ready yet")
        assert "does not accept the API key in $UPSTREAM_KEY" in log  # at start
        _wait_log(sp, "failed its health check: GET /v1/models answered 401")  # and from the checker
        ep = sp.endpoints()[0]
        assert not ep["ready"]
        assert "does not accept the API key in $UPSTREAM_KEY" in ep["last_error"]
        texts = _admin_texts(sp)
    finally:
        assert sp.stop() == 0, sp.log()
    assert all(wrong not in t for t in texts)
    assert wrong not in sp.log()


def test_no_key_for_an_endpoint_that_wants_one_says_to_set_api_key_env(
        tmp_path: Path, https_upstream: FakeOpenAIServer, certs: Certs) -> None:
    sp = _serve(tmp_path, {"url": https_upstream.url, "ca_file": str(certs.ca)})
    try:
        _wait_log(sp, "wants an API key (set the endpoint's api_key_env)")
    finally:
        assert sp.stop() == 0, sp.log()


def test_an_unset_key_variable_stops_serve_before_it_starts(tmp_path: Path, https_upstream: FakeOpenAIServer,
                                                          certs: Certs) -> None:
    sp = _serve(tmp_path, {"url": https_upstream.url, "ca_file": str(certs.ca), "api_key_env": "NO_SUCH_KEY_VAR"})
    code = sp.proc.wait(60)
    assert code != 0
    log = sp.log()
    assert "deployments.0.endpoints.0.api_key_env: environment variable NO_SUCH_KEY_VAR is not set" in log
    assert "gateway listening" not in log


def test_the_gateway_listener_serves_https(tmp_path: Path, certs: Certs) -> None:
    with FakeOpenAIServer(model="fake", text=("hel", "lo"), ttft_s=0.0, itl_s=0.0).in_thread() as up:
        sp = _serve(tmp_path, {"url": up.url},
                    gateway={"tls": {"cert_file": str(certs.cert), "key_file": str(certs.key)}})
        try:
            _wait_log(sp, f"gateway listening on https://127.0.0.1:{sp.port}")
            _wait_log(sp, "remote: 1 of 1 endpoint(s) ready")
            base = f"https://127.0.0.1:{sp.port}"
            with httpx.Client(verify=ssl.create_default_context(cafile=certs.ca)) as http:
                client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=30, http_client=http)
                r = client.chat.completions.create(model="remote", messages=MSGS, max_tokens=8)
                assert r.choices[0].message.content == "hello"
                text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
                    model="remote", messages=MSGS, max_tokens=8, stream=True) if c.choices)
                assert text == "hello"
                assert json.loads(http.get(base + "/ready").text)["status"] == "ready"
            with httpx.Client(verify=ssl.create_default_context(cafile=certs.other_ca)) as stranger, pytest.raises(httpx.ConnectError):
                stranger.get(base + "/health")  # a client that does not trust its CA refuses it
            with pytest.raises(OSError):
                http_get(sp.url + "/health", timeout=5)  # plain http on the TLS port gets no answer
            status = _status(base, "--ca-file", str(certs.ca))
            assert status.returncode == 0 and "remote-1" in status.stdout, status
            assert "certificate verify failed" in _status(base).stderr  # no CA given: the CLI says why
        finally:
            assert sp.stop() == 0, sp.log()


def test_a_listener_certificate_that_cannot_be_loaded_stops_serve(tmp_path: Path, certs: Certs) -> None:
    sp = _serve(tmp_path, {"url": f"http://127.0.0.1:{free_port()}"},
                gateway={"tls": {"cert_file": str(certs.cert), "key_file": str(tmp_path / "missing.key")}})
    assert sp.proc.wait(60) != 0
    assert "gateway.tls.key_file:" in sp.log() and "does not exist" in sp.log()
    sp = _serve(tmp_path, {"url": f"http://127.0.0.1:{free_port()}"},
                gateway={"tls": {"cert_file": str(certs.cert), "key_file": str(certs.ca)}})  # not its key
    assert sp.proc.wait(60) != 0
    assert "gateway.tls: cannot load the certificate" in sp.log()


def test_a_reload_that_adds_the_ca_brings_the_endpoint_in(tmp_path: Path, https_upstream: FakeOpenAIServer,
                                                          certs: Certs) -> None:
    endpoint = {"url": https_upstream.url, "api_key_env": "UPSTREAM_KEY"}
    sp = _serve(tmp_path, endpoint, env={"UPSTREAM_KEY": KEY})
    try:
        _wait_log(sp, "failed its health check: certificate verify failed")
        doc = yaml.safe_load((tmp_path / "deploy.yaml").read_text())
        doc["deployments"][0]["endpoints"][0]["ca_file"] = str(certs.ca)
        (tmp_path / "deploy.yaml").write_text(yaml.safe_dump(doc))
        r = subprocess.run([sys.executable, "-m", "inferplane", "reload", "--url", sp.url],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r
        deadline = time.monotonic() + 30
        while not sp.endpoints()[0]["ready"] and time.monotonic() < deadline:
            time.sleep(0.2)
        ep = sp.endpoints()[0]
        assert ep["ready"] and ep["last_error"] is None, ep
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=30)
        assert client.chat.completions.create(model="remote", messages=MSGS, max_tokens=8).choices[0].message.content
    finally:
        assert sp.stop() == 0, sp.log()
    assert KEY not in sp.log()


def test_config_validate_names_the_unset_key_variable_and_a_missing_ca(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump({"deployments": [{"name": "remote", "runtime": "openai", "replicas": 0,
                                                     "endpoints": [{"url": "https://gpu.example:8443",
                                                                    "api_key_env": "NO_SUCH_KEY_VAR",
                                                                    "ca_file": str(tmp_path / "ca.pem")}]}]}))
    r = subprocess.run([sys.executable, "-m", "inferplane", "config", "validate", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "deployments.0.endpoints.0.api_key_env: environment variable NO_SUCH_KEY_VAR is not set" in out
    assert f"deployments.0.endpoints.0.ca_file: CA bundle {tmp_path / 'ca.pem'} does not exist" in out
    path.write_text(yaml.safe_dump({"deployments": [{"name": "remote", "runtime": "openai", "replicas": 0,
                                                     "endpoints": [{"url": "https://gpu.example:8443",
                                                                    "api_key": KEY}]}]}))
    r = subprocess.run([sys.executable, "-m", "inferplane", "config", "validate", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "api_key_env" in r.stdout + r.stderr and KEY not in r.stdout + r.stderr
