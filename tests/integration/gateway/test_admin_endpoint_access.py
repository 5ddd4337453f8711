"""An https endpoint that wants an API key joins a running `inferplane serve` through the admin
API (``POST /admin/deployments/{name}/endpoints``) with the same fields the deployment file takes,
and serves the official OpenAI client; what cannot be used is a 400 that says why, and the key
is never in an /admin/* answer or the log.

The upstream is the fake OpenAI server over HTTPS with a certificate from a CA made in the test,
answering 401 on /v1/* without ``Authorization: Bearer <key>`` (as vLLM's ``--api-key``).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from helpers import ServeProcess, http_get, start_serve
from inferplane.bench.fake_server import FakeOpenAIServer
from tls_certs import Certs, make_certs, server_context

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

KEY = "sk-joined-Vb62kQz9"
MSGS = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def upstream(certs: Certs) -> Iterator[FakeOpenAIServer]:
    srv = FakeOpenAIServer(ssl_context=server_context(certs), api_key=KEY, model="fake", text=("jo", "ined"), ttft_s=0.0, itl_s=0.0)
    with srv.in_thread():
        yield srv


@pytest.fixture
def sp(tmp_path: Path) -> Iterator[ServeProcess]:
    cfg = tmp_path / "deploy.yaml"
    cfg.write_text(yaml.safe_dump({"gateway": {"scrape_interval_s": 0.3, "queue_timeout_s": 20},
                                   "deployments": [{"name": "m", "runtime": "openai", "replicas": 0}]}))
    proc = start_serve(["--config", str(cfg)], tmp_path, wait_ready=False, env={"JOINED_KEY": KEY})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if http_get(proc.url + "/health", timeout=2)[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        yield proc
    finally:
        assert proc.stop() == 0, proc.log()
    assert KEY not in proc.log()


def _post(sp: ServeProcess, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(sp.url + "/admin/deployments/m/endpoints", data=json.dumps(body).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_an_https_endpoint_with_a_key_joins_and_serves(sp: ServeProcess, upstream: FakeOpenAIServer,
                                                       certs: Certs) -> None:
    status, added = _post(sp, {"url": upstream.url, "api_key_env": "JOINED_KEY", "ca_file": str(certs.ca)})
    assert status == 201, added
    assert added["api_key_from"] == "$JOINED_KEY" and added["tls"] == f"ca_file {certs.ca}"
    client = openai.OpenAI(base_url=sp.url + "/v1", api_key="client-key", max_retries=0, timeout=30)
    raw = client.chat.completions.with_raw_response.create(model="m", messages=MSGS, max_tokens=8)  # held until ready
    assert raw.headers["x-inferplane-endpoint"] == added["id"]
    assert raw.parse().choices[0].message.content == "joined"
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="m", messages=MSGS, max_tokens=8, stream=True) if c.choices)
    assert text == "joined"
    assert upstream.headers_seen[-1]["authorization"] == f"Bearer {KEY}"  # the key reached the upstream
    eps = [e for e in sp.endpoints() if e["id"] == added["id"]]
    assert eps[0]["ready"] and eps[0]["api_key_from"] == "$JOINED_KEY"
    for path in ("/admin/endpoints", "/admin/deployments", "/admin/deployments/m", "/metrics"):
        assert KEY not in http_get(sp.url + path)[1].decode()
    # another admin change to the deployment keeps the endpoint that joined, and its key
    req = urllib.request.Request(sp.url + "/admin/deployments/m", data=b'{"replicas": 0}', method="PATCH",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200
    time.sleep(1.0)  # a few health rounds
    assert [e["id"] for e in sp.endpoints()] == [added["id"]]
    assert client.chat.completions.create(model="m", messages=MSGS, max_tokens=8).choices[0].message.content == "joined"


def test_what_cannot_be_used_is_a_400_that_says_why(sp: ServeProcess, upstream: FakeOpenAIServer,
                                                   certs: Certs, tmp_path: Path) -> None:
    status, err = _post(sp, {"url": upstream.url, "api_key_env": "NO_SUCH_VAR_7", "ca_file": str(certs.ca)})
    assert status == 400 and "NO_SUCH_VAR_7 is not set" in err["error"]["message"]
    assert err["error"]["param"] == "api_key_env"
    status, err = _post(sp, {"url": upstream.url, "api_key": KEY})
    assert status == 400 and "api_key_env" in err["error"]["message"] and KEY not in json.dumps(err)
    status, err = _post(sp, {"url": upstream.url, "ca_file": str(tmp_path / "missing.pem")})
    assert status == 400 and "does not exist" in err["error"]["message"] and err["error"]["param"] == "ca_file"
    status, err = _post(sp, {"url": "http://127.0.0.1:1", "ca_file": str(certs.ca)})
    assert status == 400 and "https" in err["error"]["message"]
    status, err = _post(sp, {"url": upstream.url, "api_key_env": "sk-pasted-key-123"})
    assert status == 400 and "NAME of an environment variable" in err["error"]["message"]
    status, err = _post(sp, {"url": upstream.url, "tls_verify": "maybe"})
    assert status == 400 and err["error"]["param"] == "tls_verify"
    assert sp.endpoints() == []  # nothing joined
