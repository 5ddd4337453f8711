"""Requests the HTTP server refuses before the pipeline sees them - one pipelined request too many
(429) and a connection over the cap (503) - are what the client gets, and show in /metrics and the
access log of a real `inferplane serve`, on the route the client asked for."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml

from helpers import ServeProcess, http_get, start_serve
from inferplane.bench.fake_server import FakeOpenAIServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}).encode()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServeProcess, Path]]:
    upstream = FakeOpenAIServer(model="fake", text=("o", "k"), ttft_s=0.3, itl_s=0.0)
    with upstream.in_thread():
        log = tmp_path / "access.jsonl"
        cfg = tmp_path / "deploy.yaml"
        cfg.write_text(yaml.safe_dump({
            "gateway": {"scrape_interval_s": 0.5, "max_connections": 2, "max_pipelined_requests": 1,
                        "access_log": str(log)},
            "deployments": [{"name": "m", "runtime": "openai", "replicas": 0, "endpoints": [{"url": upstream.url}]}],
        }))
        sp = start_serve(["--config", str(cfg)], tmp_path)
        try:
            yield sp, log
        finally:
            assert sp.stop() == 0, sp.log()


def _request(extra: bytes = b"") -> bytes:
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s"
            b"Content-Length: %d\r\n\r\n%s" % (extra, len(BODY), BODY))


def _access_lines(log: Path, want: int) -> list[dict]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        refused = [line for line in lines if line["status"] in (429, 503)]
        if len(refused) >= want:
            return refused
        time.sleep(0.2)
    raise AssertionError(f"{want} refused request(s) not in the access log: {log.read_text() if log.exists() else ''}")


def test_a_pipelined_request_too_many_is_a_429_the_metrics_and_the_log_show(served) -> None:  # type: ignore[no-untyped-def]
    sp, log = served
    with socket.create_connection(("127.0.0.1", sp.port), timeout=30) as conn:
        conn.sendall(_request() + _request() + _request(b"X-Request-Id: one-too-many\r\n"))
        got = b""
        while len(re.findall(rb"HTTP/1\.1 \d+", got)) < 3:
            chunk = conn.recv(65536)
            if not chunk:
                break
            got += chunk
    assert re.findall(rb"HTTP/1\.1 (\d+)", got) == [b"200", b"200", b"429"]
    assert b"too_many_pipelined_requests" in got
    metrics = http_get(sp.url + "/metrics")[1].decode()
    assert 'inferplane_requests_total{model="",route="chat",status="429"} 1.0' in metrics
    (line,) = _access_lines(log, 1)
    assert (line["request_id"], line["route"], line["status"], line["error_code"]) == \
        ("one-too-many", "chat", 429, "too_many_pipelined_requests")


def test_a_connection_over_the_cap_is_a_503_the_metrics_and_the_log_show(served) -> None:  # type: ignore[no-untyped-def]
    sp, log = served
    idle = [socket.create_connection(("127.0.0.1", sp.port), timeout=30) for _ in range(2)]  # the cap: 2
    try:
        time.sleep(0.3)
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=30)
        with pytest.raises(openai.APIStatusError) as err:
            client.embeddings.create(model="m", input="hi", extra_headers={"X-Request-Id": "over-the-cap"})
        assert err.value.status_code == 503 and err.value.response.headers["retry-after"] == "1"
    finally:
        for s in idle:
            s.close()
    time.sleep(0.3)
    metrics = http_get(sp.url + "/metrics")[1].decode()
    assert 'inferplane_requests_total{model="",route="embeddings",status="503"} 1.0' in metrics
    (line,) = _access_lines(log, 1)
    assert (line["request_id"], line["route"], line["status"], line["error_code"]) == \
        ("over-the-cap", "embeddings", 503, "too_many_connections")
