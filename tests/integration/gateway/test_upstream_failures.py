"""The gateway in front of misbehaving upstreams (tests/fake_upstream.py), via --config."""

from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest
import yaml

from helpers import ServeProcess, free_port, http_get, start_serve

pytestmark = pytest.mark.integration

FAKE = Path(__file__).parents[2] / "fake_upstream.py"
MSGS = [{"role": "user", "content": "hi"}]


def _serve(tmp_path: Path, urls: list[str], **gateway: object) -> ServeProcess:
    cfg = {"gateway": {"scrape_interval_s": 0.5, **gateway},
           "deployments": [{"name": "m", "runtime": "openai", "replicas": 0, "policy": "round_robin",
                            "endpoints": [{"url": u} for u in urls]}]}
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return start_serve(["--config", str(path)], tmp_path, ready_timeout=30)


def _metric_sum(sp: ServeProcess, prefix: str) -> float:
    _, body = http_get(sp.url + "/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines() if line.startswith(prefix))


def test_stale_kept_alive_connections_are_resent_invisibly(tmp_path: Path, fakes) -> None:
    sp = _serve(tmp_path, [fakes("close_after_stream")])
    try:
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0)
        for _ in range(6):
            text = "".join(c.choices[0].delta.content or "" for c in
                           client.chat.completions.create(model="m", messages=MSGS, stream=True))
            assert text == "hello"
            assert client.chat.completions.create(model="m", messages=MSGS).choices[0].message.content == "hello"
        assert _metric_sum(sp, 'inferplane_retries_total{model="m",reason="stale_connection"}') >= 1
    finally:
        assert sp.stop() == 0


def test_a_stream_that_breaks_midway_ends_with_an_error_event(tmp_path: Path, fakes) -> None:
    sp = _serve(tmp_path, [fakes("break_stream")])
    try:
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0)
        got = []
        with pytest.raises(openai.APIError) as exc:
            for c in client.chat.completions.create(model="m", messages=MSGS, stream=True):
                got.append(c.choices[0].delta.content or "")
        assert "".join(got) == "hello"  # what was generated before the break still arrived
        assert "broke off" in str(exc.value)
        assert _metric_sum(sp, "inferplane_upstream_errors_total") >= 1
    finally:
        assert sp.stop() == 0


def test_5xx_fails_over_to_a_healthy_replica(tmp_path: Path, fakes) -> None:
    sp = _serve(tmp_path, [fakes("status_500"), fakes("ok")])
    try:
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0)
        for _ in range(6):
            raw = client.chat.completions.with_raw_response.create(model="m", messages=MSGS)
            assert raw.parse().choices[0].message.content == "hello"
            assert raw.headers["x-inferplane-endpoint"] == "m-2"
        assert _metric_sum(sp, 'inferplane_upstream_errors_total{endpoint="m-1"') >= 3
    finally:
        assert sp.stop() == 0


def test_all_replicas_failing_gives_502_with_a_clear_message(tmp_path: Path, fakes) -> None:
    sp = _serve(tmp_path, [fakes("status_500")])
    try:
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as exc:
            client.chat.completions.create(model="m", messages=MSGS)
        assert exc.value.status_code == 502
        assert "answered 500" in exc.value.message
    finally:
        assert sp.stop() == 0


def test_upstream_down_gives_503_then_502_with_clear_messages(tmp_path: Path, fakes) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    cfg = {"gateway": {"scrape_interval_s": 0.5, "queue_timeout_s": 1.0},
           "deployments": [{"name": "m", "runtime": "openai", "replicas": 0, "endpoints": [{"url": dead}]}]}
    path = tmp_path / "dead.yaml"
    path.write_text(yaml.safe_dump(cfg))
    sp = start_serve(["--config", str(path)], tmp_path, wait_ready=False)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if http_get(sp.url + "/health", timeout=1)[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        assert http_get(sp.url + "/ready")[0] == 503
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as exc:
            client.chat.completions.create(model="m", messages=MSGS)
        assert exc.value.status_code == 503  # after being held queue_timeout_s for a replica
        assert exc.value.code == "model_not_ready"
        assert "became ready within 1 s" in exc.value.message
        assert int(exc.value.response.headers["retry-after"]) >= 1
    finally:
        assert sp.stop() == 0


def test_api_keys_are_enforced(tmp_path: Path, fakes) -> None:
    sp = _serve(tmp_path, [fakes("ok")], api_keys=["sekret"])
    try:
        bad = openai.OpenAI(base_url=sp.url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="m", messages=MSGS)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        assert http_get(sp.url + "/admin/endpoints")[0] == 401
        assert http_get(sp.url + "/health")[0] == 200  # probes and scrapers need no key
        assert http_get(sp.url + "/metrics")[0] == 200
        good = openai.OpenAI(base_url=sp.url + "/v1", api_key="sekret", max_retries=0)
        assert good.chat.completions.create(model="m", messages=MSGS).choices
        assert [m.id for m in good.models.list()] == ["m"]
    finally:
        assert sp.stop() == 0
