"""Tenants end to end against a real `inferplane serve` over the fake OpenAI runtime:
keys and scopes, the admin key, RPM and TPM limits with concurrent clients, per-tenant metrics.

The fake runtime (``inferplane.bench.fake_server``) answers in milliseconds and reports
usage (prompt = ``len(json(messages)) // 4``, completion = ``max_tokens``), so limit tests
are about the gateway's arithmetic, not a model's speed.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import threading
import time
from pathlib import Path

import openai
import pytest
import yaml

from helpers import ServeProcess, http_get, start_serve
from inferplane.gateway.tenancy.keys import hash_key
from inferplane.gateway.tenancy.limiter import estimate_tokens

pytestmark = pytest.mark.integration

MSGS = [{"role": "user", "content": "hello there"}]
ADMIN = "admin-secret-key"


def _serve(tmp_path: Path, deployments: list[dict], env: dict[str, str] | None = None, **gateway: object) -> ServeProcess:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump({"gateway": {"scrape_interval_s": 0.5, **gateway}, "deployments": deployments}))
    return start_serve(["--config", str(path)], tmp_path, ready_timeout=60, env=env)


def _dep(name: str, url: str, **kw: object) -> dict:
    return {"name": name, "runtime": "openai", "replicas": 0, "endpoints": [{"url": url}], **kw}


def _client(sp: ServeProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=sp.url + "/v1", api_key=key, max_retries=0, timeout=30)


def _get(url: str, key: str | None) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _metric(sp: ServeProcess, name: str, **labels: str) -> float:
    _, body = http_get(sp.url + "/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_keys_scopes_and_the_admin_key(tmp_path: Path, fake_server) -> None:
    up = fake_server(ttft_s=0, itl_s=0, output_len=2)
    tenants = [
        {"name": "search", "key_sha256": hash_key("search-key"), "deployments": ["a"], "rpm_limit": 1000},
        {"name": "ops", "key_sha256": hash_key("ops-key"), "priority": "high"},
    ]
    sp = _serve(tmp_path, [_dep("a", up), _dep("b", up)], env={"TEST_ADMIN_KEY": ADMIN},
                tenants=tenants, api_keys=["plain-key"], admin_key_env="TEST_ADMIN_KEY")
    try:
        # no key, a wrong key, the admin key: not API keys
        for key in ("wrong", ADMIN):
            with pytest.raises(openai.AuthenticationError):
                _client(sp, key).chat.completions.create(model="a", messages=MSGS, max_tokens=2)
        search = _client(sp, "search-key")
        raw = search.chat.completions.with_raw_response.create(model="a", messages=MSGS, max_tokens=2)
        assert raw.parse().choices[0].message.content
        assert raw.headers["x-ratelimit-limit-requests"] == "1000"
        assert raw.headers["x-ratelimit-remaining-requests"] == "999"
        assert re.fullmatch(r"\d+ms", raw.headers["x-ratelimit-reset-requests"])
        assert "x-ratelimit-limit-tokens" not in raw.headers  # no token limit: no token headers
        # b exists but is not search's: 403, worded exactly as for a model that does not exist
        errors = {}
        for model in ("b", "no-such-model"):
            with pytest.raises(openai.PermissionDeniedError) as exc:
                search.chat.completions.create(model=model, messages=MSGS, max_tokens=2)
            errors[model] = exc.value.response.json()["error"]["message"].replace(model, "<m>")
        assert errors["b"] == errors["no-such-model"]
        assert [m.id for m in search.models.list().data] == ["a"]
        assert sorted(m.id for m in _client(sp, "ops-key").models.list().data) == ["a", "b"]
        # the plain api_keys list still works, as a tenant without limits
        plain = _client(sp, "plain-key").chat.completions.with_raw_response.create(model="b", messages=MSGS,
                                                                                  max_tokens=2)
        assert plain.parse().choices and "x-ratelimit-limit-requests" not in plain.headers
        # /admin/* opens to the admin key only
        for key, status in ((None, 401), ("search-key", 403), ("plain-key", 403), ("ops-key", 403), (ADMIN, 200)):
            assert _get(sp.url + "/admin/endpoints", key)[0] == status, key
        code, queues = _get(sp.url + "/admin/queues", ADMIN)
        assert code == 200 and set(queues["deployments"]) == {"a", "b"}
        assert _metric(sp, "inferplane_tenant_requests_total", tenant="search", status="200") == 1
        assert _metric(sp, "inferplane_tenant_requests_total", tenant="search", status="403") == 2
    finally:
        assert sp.stop() == 0


def test_the_admin_key_must_be_set_when_named(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump({"gateway": {"admin_key_env": "TEST_UNSET_ADMIN_KEY"},
                                    "deployments": [_dep("a", "http://127.0.0.1:9")]}))
    sp = start_serve(["--config", str(path)], tmp_path, wait_ready=False, env={"TEST_UNSET_ADMIN_KEY": ""})
    assert sp.proc.wait(60) != 0
    assert "TEST_UNSET_ADMIN_KEY" in sp.log() and "not set" in sp.log()


def _hammer(fn, threads: int, seconds: float) -> tuple[list, float]:
    """Call ``fn()`` from ``threads`` threads for ``seconds``; returns every result and the time taken."""
    stop = time.monotonic() + seconds
    out: list = []
    lock = threading.Lock()

    def loop() -> None:
        while time.monotonic() < stop:
            r = fn()
            with lock:
                out.append(r)

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(loop) for _ in range(threads)]:
            f.result()
    return out, time.monotonic() - t0


def test_rpm_limit_holds_under_concurrent_clients(tmp_path: Path, fake_server) -> None:
    up = fake_server(ttft_s=0, itl_s=0, output_len=2)
    rpm = 30
    sp = _serve(tmp_path, [_dep("a", up)], tenants=[{"name": "t", "key_sha256": hash_key("k"), "rpm_limit": rpm}])
    try:
        client = _client(sp, "k")

        def one() -> tuple[int, dict]:
            try:
                raw = client.chat.completions.with_raw_response.create(model="a", messages=MSGS, max_tokens=2)
                raw.parse()
                return 200, dict(raw.headers)
            except openai.RateLimitError as exc:
                return 429, dict(exc.response.headers)

        results, elapsed = _hammer(one, threads=6, seconds=4.0)
        admitted = [h for s, h in results if s == 200]
        refused = [h for s, h in results if s == 429]
        # a bucket of 30 that refills at 30/min: the burst, plus what refilled while the test ran
        assert rpm <= len(admitted) <= rpm + rpm * elapsed / 60 + 1, (len(admitted), elapsed)
        assert refused, "the clients sent more than the limit"
        for h in refused:
            assert int(h["retry-after"]) >= 1 and h["x-ratelimit-remaining-requests"] == "0"
            assert h["x-ratelimit-limit-requests"] == str(rpm) and float(h["retry-after-ms"]) <= 2000
        assert _metric(sp, "inferplane_tenant_rate_limited_total", tenant="t", limit="requests") == len(refused)
    finally:
        assert sp.stop() == 0


def test_tpm_limit_counts_what_was_used_and_concurrency_cannot_overshoot(tmp_path: Path, fake_server) -> None:
    up = fake_server(ttft_s=0.05, itl_s=0.005, output_len=0)  # completion = max_tokens
    tpm, max_tokens = 4000, 40
    sp = _serve(tmp_path, [_dep("a", up)], tenants=[{"name": "t", "key_sha256": hash_key("k"), "tpm_limit": tpm}])
    try:
        client = _client(sp, "k")

        def one() -> tuple[int, int, str]:
            try:
                raw = client.chat.completions.with_raw_response.create(model="a", messages=MSGS,
                                                                       max_tokens=max_tokens)
                return 200, raw.parse().usage.total_tokens, raw.headers["x-ratelimit-remaining-tokens"]
            except openai.RateLimitError as exc:
                return 429, 0, exc.response.headers["x-ratelimit-remaining-tokens"]

        results, elapsed = _hammer(one, threads=8, seconds=4.0)
        used = sum(u for s, u, _ in results if s == 200)
        admitted = sum(1 for s, _, _ in results if s == 200)
        body_len = len(json.dumps({"messages": MSGS, "model": "a", "max_tokens": max_tokens}))
        estimate = estimate_tokens(body_len, max_tokens, 1, 256)
        per_request = used // admitted
        assert per_request < estimate  # the estimate reserves more than the fake uses...
        # ...so what was used never goes past the limit (plus what refilled meanwhile) by more than one estimate
        assert used <= tpm + tpm * elapsed / 60 + estimate, (used, elapsed)
        # and reservations were settled to what was used: more requests got in than estimates alone allow
        assert admitted > (tpm + tpm * elapsed / 60) / estimate * 1.3, (admitted, estimate, per_request)
        assert any(s == 429 for s, _, _ in results)
        completion = _metric(sp, "inferplane_tenant_tokens_total", tenant="t", kind="completion")
        prompt = _metric(sp, "inferplane_tenant_tokens_total", tenant="t", kind="prompt")
        assert completion == admitted * max_tokens and completion + prompt == used
        assert _metric(sp, "inferplane_tenant_rate_limited_total", tenant="t", limit="tokens") > 0
        # a request that could never fit: 429 request_too_large, at once
        with pytest.raises(openai.RateLimitError) as exc:
            client.chat.completions.create(model="a", messages=MSGS, max_tokens=tpm)
        assert exc.value.response.json()["error"]["code"] == "request_too_large"
    finally:
        assert sp.stop() == 0


def test_max_concurrent_refuses_the_one_too_many(tmp_path: Path, fake_server) -> None:
    up = fake_server(ttft_s=2.0, itl_s=0, output_len=2)
    sp = _serve(tmp_path, [_dep("a", up)], tenants=[{"name": "t", "key_sha256": hash_key("k"), "max_concurrent": 2}])
    try:
        client = _client(sp, "k")

        def one() -> int:
            try:
                client.chat.completions.create(model="a", messages=MSGS, max_tokens=2)
                return 200
            except openai.RateLimitError:
                return 429

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            codes = sorted(pool.map(lambda _i: one(), range(4)))
        assert codes == [200, 200, 429, 429]
        assert one() == 200  # the places came back
    finally:
        assert sp.stop() == 0
