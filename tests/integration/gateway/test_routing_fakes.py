"""Routing across replicas behind one model: tiers, failover, fallback, breakers, slow replicas."""

from __future__ import annotations

import concurrent.futures
import time
from collections import Counter
from pathlib import Path

import openai
import pytest
import yaml

from helpers import ServeProcess, free_port, http_get, start_serve

pytestmark = pytest.mark.integration

MSGS = [{"role": "user", "content": "hi"}]


def _serve(tmp_path: Path, deployments: list[dict], **gateway: object) -> ServeProcess:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump({"gateway": {"scrape_interval_s": 0.3, **gateway}, "deployments": deployments}))
    return start_serve(["--config", str(path)], tmp_path, ready_timeout=30, wait_ready=False)


def _wait_ready(sp: ServeProcess, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http_get(sp.url + "/ready", timeout=1)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(sp.log())


def _client(sp: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=30)


def _served_by(client: openai.OpenAI, model: str = "m") -> tuple[str, dict]:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=MSGS)
    raw.parse()
    return raw.headers["x-inferplane-endpoint"], dict(raw.headers)


def test_traffic_stays_in_the_preferred_tier_and_fails_over_when_it_dies(tmp_path: Path, fakes) -> None:
    primary, backup = fakes("ok"), fakes("ok")
    sp = _serve(tmp_path, [{"name": "m", "runtime": "openai", "replicas": 0, "endpoints": [
        {"url": primary, "priority": 0}, {"url": backup, "priority": 1}]}])
    try:
        _wait_ready(sp)
        client = _client(sp)
        assert {_served_by(client)[0] for _ in range(6)} == {"m-1"}
        fakes.stop(primary)
        # no failed request: the dead primary is retried on the backup before any byte went out
        assert {_served_by(client)[0] for _ in range(6)} == {"m-2"}
    finally:
        assert sp.stop() == 0


def test_fallback_deployment_serves_when_every_replica_is_down(tmp_path: Path, fakes) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    sp = _serve(tmp_path, [
        {"name": "big", "runtime": "openai", "replicas": 0, "endpoints": [{"url": dead}], "fallback": "small"},
        {"name": "small", "runtime": "openai", "replicas": 0, "endpoints": [{"url": fakes("ok")}]},
    ])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            _, body = http_get(sp.url + "/ready", timeout=1) if _up(sp) else (0, b"")
            if b'"small":1' in body:
                break
            time.sleep(0.1)
        endpoint, headers = _served_by(_client(sp), "big")
        assert endpoint == "small-2"
        assert headers["x-inferplane-fallback"] == "small"
    finally:
        assert sp.stop() == 0


def _up(sp: ServeProcess) -> bool:
    try:
        http_get(sp.url + "/health", timeout=1)
        return True
    except OSError:
        return False


def _metric(sp: ServeProcess, prefix: str) -> float:
    _, body = http_get(sp.url + "/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines() if line.startswith(prefix))


def test_breaker_opens_on_a_replica_that_keeps_failing(tmp_path: Path, fakes) -> None:
    sp = _serve(tmp_path, [{"name": "m", "runtime": "openai", "replicas": 0, "policy": "round_robin",
                            "breaker": {"failure_threshold": 2, "open_s": 60},
                            "endpoints": [{"url": fakes("status_500")}, {"url": fakes("ok")}]}])
    try:
        _wait_ready(sp)
        client = _client(sp)
        served = Counter(_served_by(client)[0] for _ in range(12))
        assert served == {"m-2": 12}  # every request succeeded, on the healthy replica
        # only the failures that opened the breaker reached the bad replica
        assert _metric(sp, 'inferplane_upstream_errors_total{endpoint="m-1"') == 2
        assert _metric(sp, 'inferplane_endpoint_breaker_state{deployment="m",endpoint="m-1"') == 1
        _, body = http_get(sp.url + "/admin/endpoints")
        assert b'"breaker":"open"' in body
    finally:
        assert sp.stop() == 0


def test_a_slow_replica_gets_less_traffic(tmp_path: Path, fakes) -> None:
    sp = _serve(tmp_path, [{"name": "m", "runtime": "openai", "replicas": 0, "policy": "least_load",
                            "max_concurrent_sequences": 1,
                            "endpoints": [{"url": fakes("slow")}, {"url": fakes("ok")}]}])
    try:
        _wait_ready(sp)
        client = _client(sp)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            served = Counter(pool.map(lambda _: _served_by(client)[0], range(24)))
        assert served["m-2"] > 3 * served["m-1"], served  # round robin would give each 12
    finally:
        assert sp.stop() == 0


def test_routing_decisions_are_explained(tmp_path: Path, fakes) -> None:
    sp = _serve(tmp_path, [{"name": "m", "runtime": "openai", "replicas": 0, "policy": "prefix",
                            "endpoints": [{"url": fakes("ok")}, {"url": fakes("ok")}]}])
    try:
        _wait_ready(sp)
        client = _client(sp)
        system = {"role": "system", "content": "You are a terse assistant. " * 60}
        raws = [client.chat.completions.with_raw_response.create(
            model="m", messages=[system, {"role": "user", "content": f"q{i}"}]) for i in range(5)]
        assert {r.headers["x-inferplane-policy"] for r in raws} == {"prefix"}
        assert len({r.headers["x-inferplane-endpoint"] for r in raws}) == 1  # the shared prefix sticks
        import json

        decisions = json.loads(http_get(sp.url + "/admin/routing")[1])["decisions"]
        assert len(decisions) == 5
        assert set(decisions[-1]["scores"]) == {"m-1", "m-2"}
        assert decisions[-1]["predicted_cached_blocks"] > 0
        assert _metric(sp, 'inferplane_routing_decisions_total{deployment="m",policy="prefix"}') == 5
    finally:
        assert sp.stop() == 0


def test_session_affinity_keeps_a_session_on_one_replica(tmp_path: Path, fakes) -> None:
    sp = _serve(tmp_path, [{"name": "m", "runtime": "openai", "replicas": 0, "policy": "session",
                            "endpoints": [{"url": fakes("ok")}, {"url": fakes("ok")}, {"url": fakes("ok")}]}])
    try:
        _wait_ready(sp)
        client = _client(sp)
        by_session = {}
        for s in range(6):
            served = {client.chat.completions.with_raw_response.create(
                model="m", messages=MSGS, extra_headers={"x-session-id": f"s{s}"}).headers["x-inferplane-endpoint"]
                for _ in range(4)}
            assert len(served) == 1, f"session s{s} moved: {served}"
            by_session[s] = served.pop()
        # the OpenAI `user` field is a session key too
        users = {client.chat.completions.with_raw_response.create(
            model="m", messages=MSGS, user="alice").headers["x-inferplane-endpoint"] for _ in range(4)}
        assert len(users) == 1
        assert len(set(by_session.values())) >= 2  # sessions spread over the replicas
    finally:
        assert sp.stop() == 0
