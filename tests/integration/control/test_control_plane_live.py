"""The control plane against a real `inferplane serve` with embedded SmolLM2 replicas
(1 thread, 1-2 slots each): autoscaling, scale to zero, drain on SIGTERM, changes without
a restart, endpoints added and removed through the admin API."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from helpers import ServeProcess, alive, http_get, start_serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MSGS = [{"role": "user", "content": "Write one sentence about the sea."}]


def _serve(tmp: Path, deployments: list[dict[str, Any]], **gateway: Any) -> tuple[ServeProcess, Path]:
    cfg = tmp / "deploy.yaml"
    cfg.write_text(yaml.safe_dump({"gateway": {"scrape_interval_s": 0.5, **gateway}, "deployments": deployments}))
    return start_serve(["--config", str(cfg)], tmp), cfg


def _smollm2(**fields: Any) -> dict[str, Any]:
    return {"name": "smollm2", "threads": 1, "max_concurrent_sequences": 2, "context_length_tokens": 1024,
            "drain_timeout_s": 60, **fields}


def _admin(sp: ServeProcess, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(sp.url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def _deployment(sp: ServeProcess, name: str = "smollm2") -> dict[str, Any]:
    status, body = _admin(sp, f"/admin/deployments/{name}")
    assert status == 200, body
    return body


def _wait(what: str, cond: Any, timeout: float = 60.0, sp: ServeProcess | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.2)
    detail = f"\n{_admin(sp, '/admin/autoscaler')[1]}\n{sp.log()[-3000:]}" if sp else ""
    raise AssertionError(f"timed out waiting for {what}{detail}")


class Load:
    """``clients`` threads streaming chat completions until stopped; records every outcome."""

    def __init__(self, sp: ServeProcess, clients: int, max_tokens: int = 24) -> None:
        self.client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=120)
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self.endpoints: set[str] = set()
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(max_tokens,), daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self, max_tokens: int) -> None:
        for _ in range(200):  # bounded
            if self.stop.is_set():
                return
            try:
                raw = self.client.chat.completions.with_raw_response.create(
                    model="smollm2", messages=MSGS, max_tokens=max_tokens, stream=True)
                finish = None
                for chunk in raw.parse():
                    if chunk.choices and chunk.choices[0].finish_reason:
                        finish = chunk.choices[0].finish_reason
                with self._lock:
                    if finish in ("stop", "length"):
                        self.ok += 1
                        self.endpoints.add(raw.headers["x-inferplane-endpoint"])
                    else:
                        self.failures.append(f"stream ended without finish_reason (cut) on "
                                             f"{raw.headers.get('x-inferplane-endpoint')}")
            except Exception as exc:  # any failure is what the test counts
                with self._lock:
                    self.failures.append(repr(exc))

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(120)


def test_autoscale_1_to_3_and_back_with_no_failed_request_or_cut_stream(tmp_path: Path) -> None:
    sp, _ = _serve(tmp_path, [_smollm2(autoscale={
        "min_replicas": 1, "max_replicas": 3, "target_in_flight_per_replica": 1.5,
        "scale_down_delay_s": 4, "interval_s": 0.5})])
    try:
        load = Load(sp, clients=5)
        _wait("3 ready replicas", lambda: _deployment(sp)["ready"] == 3, 90, sp)
        _wait("requests answered by all 3", lambda: len(load.endpoints) == 3, 60, sp)
        load.finish()
        trickle = Load(sp, clients=1)  # requests keep flowing while replicas drain away
        _wait("back to 1 replica", lambda: (d := _deployment(sp))["ready"] == 1 and d["draining"] == 0, 90, sp)
        trickle.finish()
        assert not load.failures and not trickle.failures, (load.failures + trickle.failures)[:5]
        assert load.ok > 0 and trickle.ok > 0
        status, auto = _admin(sp, "/admin/autoscaler")
        assert status == 200
        entry = auto["deployments"]["smollm2"]
        assert entry["last_change"]["direction"] == "down" and entry["desired"] == 1
        metrics = http_get(sp.url + "/metrics")[1].decode()
        assert 'inferplane_autoscaler_decisions_total{deployment="smollm2",direction="up",reason="load"}' in metrics
        assert 'inferplane_deployment_replicas{deployment="smollm2",state="ready"} 1.0' in metrics
    finally:
        assert sp.stop() == 0


def test_scale_to_zero_after_idle_then_a_request_is_held_and_answered(tmp_path: Path) -> None:
    zero = {"min_replicas": 0, "max_replicas": 1, "scale_to_zero_after_s": 2, "scale_down_delay_s": 1, "interval_s": 0.5}
    sp, _ = _serve(tmp_path, [_smollm2(autoscale=zero), _smollm2(name="cold", replicas=0, autoscale=zero)])
    try:
        pids = sp.runtime_pids()
        assert pids
        _wait("scale to zero", lambda: (d := _deployment(sp))["desired"] == 0 and not d["endpoints"], 60, sp)
        assert not [p for p in pids if alive(p)], "the replica's process is still there"
        assert http_get(sp.url + "/ready")[0] == 200  # scaled to zero still counts as able to serve
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=120)
        models = {m.id: m for m in client.models.list().data}
        assert models["smollm2"].model_extra["ready_replicas"] == 0 and "cold" in models
        t0 = time.perf_counter()
        stream = client.chat.completions.create(model="smollm2", messages=MSGS, max_tokens=8, stream=True)
        ttft = None
        text = ""
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                ttft = ttft or time.perf_counter() - t0
                text += chunk.choices[0].delta.content
        assert text
        print(f"request-to-first-token from zero replicas: {ttft:.2f} s")
        assert _deployment(sp)["ready"] == 1
        # a deployment that starts at zero replicas (its model resolved all the same) answers too
        reply = client.chat.completions.create(model="cold", messages=MSGS, max_tokens=4)
        assert reply.choices[0].message.content
    finally:
        assert sp.stop() == 0


def test_sigterm_lets_four_streams_in_flight_finish(tmp_path: Path) -> None:
    # least load: two streams per replica, all four decoding at once (2 slots each)
    sp, _ = _serve(tmp_path, [_smollm2(replicas=2, policy="least_load")], drain_timeout_s=60)
    try:
        _wait("both replicas ready", lambda: _deployment(sp)["ready"] == 2, 120, sp)  # /ready needs only one
        pids = sp.runtime_pids()
        results: list[str] = []
        started = threading.Barrier(5)

        def stream() -> None:
            client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=120)
            s = client.chat.completions.create(model="smollm2", messages=MSGS, max_tokens=120, stream=True,
                                               extra_body={"ignore_eos": True})
            finish, first = None, True
            try:
                for chunk in s:
                    if first and chunk.choices and chunk.choices[0].delta.content:
                        first = False
                        started.wait(60)
                    if chunk.choices and chunk.choices[0].finish_reason:
                        finish = chunk.choices[0].finish_reason
            except Exception as exc:  # recorded: the test asserts there is none
                results.append(repr(exc))
                return
            results.append(finish or "cut")

        threads = [threading.Thread(target=stream) for _ in range(4)]
        for t in threads:
            t.start()
        started.wait(120)  # all four have their first token
        assert sum(e["in_flight"] for e in sp.endpoints()) == 4
        sp.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(120)
        assert sp.proc.wait(60) == 0
        assert results == ["length"] * 4, results  # 120 tokens each: none was cut
        assert not [p for p in pids if alive(p)]
        assert "waiting up to 60 s for 4 request(s) in flight to finish" in sp.log()
    finally:
        sp.stop(signal.SIGKILL)  # no serve outlives a failed assert (a no-op once it exited)


def test_patch_and_reload_change_replicas_without_touching_requests_in_flight(tmp_path: Path) -> None:
    sp, cfg = _serve(tmp_path, [_smollm2(replicas=1)])
    try:
        load = Load(sp, clients=1, max_tokens=32)
        status, body = _admin(sp, "/admin/deployments/smollm2", "PATCH", {"replicas": 2})
        assert status == 200 and body["desired"] == 2
        _wait("2 ready", lambda: _deployment(sp)["ready"] == 2, 60, sp)
        assert _admin(sp, "/admin/deployments/smollm2", "PATCH", {"replicas": -1})[0] == 400
        assert _admin(sp, "/admin/deployments/smollm2", "PATCH", {"colour": "red"})[0] == 400
        assert _admin(sp, "/admin/deployments/nope", "PATCH", {"replicas": 1})[0] == 404

        # the file says 1 replica (and a new routing policy): reload drains one, restarts none
        before = {e["id"]: e["pid"] for e in sp.endpoints()}
        data = yaml.safe_load(cfg.read_text())
        data["deployments"][0]["policy"] = "least_load"
        cfg.write_text(yaml.safe_dump(data))
        r = subprocess.run([sys.executable, "-m", "inferplane", "reload", "--url", sp.url],
                           capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 0 and "changed: smollm2" in r.stdout, r.stderr
        _wait("1 ready, none draining", lambda: (d := _deployment(sp))["ready"] == 1 and not d["draining"], 60, sp)
        (left,) = sp.endpoints()
        assert before.get(left["id"]) == left["pid"], "the replica that stayed was restarted"
        st = subprocess.run([sys.executable, "-m", "inferplane", "status", "--url", sp.url],
                            capture_output=True, text=True, timeout=60, check=False)
        assert st.returncode == 0 and "DESIRED" in st.stdout
        line = next(ln for ln in st.stdout.splitlines() if ln.startswith("smollm2"))
        assert line.split()[1:5] == ["1", "1", "0", "0"], st.stdout

        # a reload with a broken file changes nothing and says why
        cfg.write_text("deployments: [{name: smollm2, replicas: -3}]")
        r = subprocess.run([sys.executable, "-m", "inferplane", "reload", "--url", sp.url],
                           capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 2 and "deployments.0.replicas" in r.stderr
        load.finish()
        assert not load.failures and load.ok >= 2, load.failures[:5]
        assert _deployment(sp)["ready"] == 1
    finally:
        assert sp.stop() == 0


def test_an_endpoint_added_and_removed_through_the_admin_api(tmp_path: Path, fakes) -> None:
    cfg = tmp_path / "ext.yaml"
    cfg.write_text(yaml.safe_dump({"gateway": {"scrape_interval_s": 0.3, "queue_timeout_s": 15, "api_keys": ["k"]},
                                   "deployments": [{"name": "m", "runtime": "openai", "replicas": 0}]}))
    sp = start_serve(["--config", str(cfg)], tmp_path, wait_ready=False)
    try:
        _wait("health", lambda: _try_health(sp), 30)
        url = fakes("ok")
        anon = urllib.request.Request(sp.url + "/admin/deployments/m/endpoints", data=b'{"url": "%s"}' % url.encode(),
                                      method="POST")
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(anon, timeout=10)
        assert denied.value.code == 401
        key = {"Authorization": "Bearer k", "Content-Type": "application/json"}

        def call(path: str, method: str, body: Any = None) -> tuple[int, Any]:
            req = urllib.request.Request(sp.url + path, data=None if body is None else json.dumps(body).encode(),
                                         method=method, headers=key)
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return r.status, json.load(r)
            except urllib.error.HTTPError as e:
                return e.code, json.load(e)

        # a client that gives up while its request is held leaves the queue at once
        with socket.create_connection(("127.0.0.1", sp.port)) as conn:
            body = json.dumps({"model": "m", "messages": MSGS}).encode()
            conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
                         b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            _wait("the request held", lambda: _held(sp) == 1, 10)
        _wait("the queue empty once the client left", lambda: _held(sp) == 0, 10)
        assert "inferplane_held_request_timeouts_total{" not in http_get(sp.url + "/metrics")[1].decode()
        assert call("/admin/deployments/m/endpoints", "POST", {"url": "localhost:1"})[0] == 400
        status, added = call("/admin/deployments/m/endpoints", "POST", {"url": url})
        assert status == 201
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="k", max_retries=0, timeout=30)
        raw = client.chat.completions.with_raw_response.create(model="m", messages=MSGS)  # held until it is ready
        assert raw.headers["x-inferplane-endpoint"] == added["id"]
        status, gone = call(f"/admin/endpoints/{added['id']}", "DELETE")
        assert status == 202 and gone["state"] == "draining"
        _wait("endpoint removed", lambda: not call("/admin/deployments/m", "GET")[1]["endpoints"], 30)
        with pytest.raises(openai.APIStatusError) as exc:
            client.chat.completions.create(model="m", messages=MSGS)
        assert exc.value.status_code == 503 and exc.value.response.headers["retry-after"]
        assert call("/admin/endpoints/nope", "DELETE")[0] == 404
    finally:
        assert sp.stop() == 0


def _held(sp: ServeProcess) -> float:
    text = http_get(sp.url + "/metrics")[1].decode()
    line = next(ln for ln in text.splitlines() if ln.startswith('inferplane_held_requests{deployment="m"}'))
    return float(line.split()[-1])


def _try_health(sp: ServeProcess) -> bool:
    try:
        return http_get(sp.url + "/health", timeout=1)[0] == 200
    except OSError:
        return False
