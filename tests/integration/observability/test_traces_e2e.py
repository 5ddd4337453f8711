"""Traces from a real `inferplane serve`, received by an OTLP/HTTP receiver on 127.0.0.1.

Two deployments behind one gateway: ``m-vllm`` (runtime vllm: its adapter says it continues
traces) served by the fake replaying vLLM's live recording, and ``m-plain`` (runtime openai:
no tracing) served by a synthetic fake. The official `openai` client sends a W3C
``traceparent``; the test checks the spans the collector got (structure, GenAI attributes,
the client's trace continued) and the headers that reached each upstream.
"""

from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest
import yaml

pytest.importorskip("opentelemetry.sdk", reason="needs the tracing extra")

from helpers import ServeProcess, http_get, start_serve
from inferplane.bench.fake_server import FakeOpenAIServer
from otlp_receiver import OtlpReceiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FIXTURES = Path(__file__).parents[2] / "fixtures"
TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


def _serve(tmp: Path, gateway: dict, deployments: list[dict]) -> ServeProcess:
    path = tmp / "deploy.yaml"
    path.write_text(yaml.safe_dump({"gateway": {"scrape_interval_s": 0.5, **gateway}, "deployments": deployments}))
    sp = start_serve(["--config", str(path)], tmp, wait_ready=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert sp.proc.poll() is None, sp.log()
        try:
            if http_get(sp.url + "/ready", timeout=1)[0] == 200:
                return sp
        except OSError:
            pass
        time.sleep(0.1)
    sp.stop()
    raise AssertionError(sp.log())


def test_spans_reach_the_collector_and_the_trace_goes_on_to_vllm(tmp_path: Path) -> None:
    vllm = FakeOpenAIServer(recording=str(FIXTURES / "vllm" / "live"), time_scale=0.1)
    plain = FakeOpenAIServer(model="m-plain", text=("hel", "lo"), ttft_s=0.0, itl_s=0.01)
    with OtlpReceiver() as rx, vllm.in_thread(), plain.in_thread():
        sp = _serve(tmp_path, {"tracing": {"otlp_endpoint": rx.endpoint, "service_name": "gw-test"}}, [
            {"name": "m-vllm", "runtime": "vllm", "replicas": 0, "endpoints": [{"url": vllm.url}]},
            {"name": "m-plain", "runtime": "openai", "replicas": 0, "endpoints": [{"url": plain.url}]},
        ])
        try:
            client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=30)
            tp = {"traceparent": f"00-{TRACE}-{PARENT}-01"}
            stream = client.chat.completions.create(
                model="m-vllm", messages=[{"role": "user", "content": "hi"}], max_tokens=8, stream=True,
                stream_options={"include_usage": True}, extra_headers=tp)
            usage = [c.usage for c in stream if c.usage][-1]
            client.chat.completions.create(model="m-plain", messages=[{"role": "user", "content": "hi"}],
                                           extra_headers=tp)
            with pytest.raises(openai.NotFoundError):
                client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
            spans = rx.wait_for(lambda s: sum(x.name != "attempt" for x in s) >= 3)
        finally:
            assert sp.stop() == 0, sp.log()
    roots = {s.name: s for s in spans if s.name != "attempt"}
    assert set(roots) == {"chat m-vllm", "chat m-plain", "chat"}, [s.name for s in spans]
    v = roots["chat m-vllm"]
    assert v.trace_id == TRACE and v.parent_span_id == PARENT and v.kind == 2
    assert v.resource["service.name"] == "gw-test"
    a = v.attributes
    assert a["gen_ai.request.model"] == "m-vllm" and a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert a["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert a["http.response.status_code"] == 200 and a["inferplane.runtime"] == "vllm"
    assert a["inferplane.endpoint"].startswith("m-vllm") and a["inferplane.routing.policy"]
    assert [e[0] for e in v.events] == ["first_token"]
    assert 0 < v.events[0][2]["inferplane.ttft_s"] < v.end_ns - v.start_ns
    (attempt,) = [s for s in spans if s.name == "attempt" and s.parent_span_id == v.span_id]
    assert attempt.trace_id == TRACE and attempt.attributes["inferplane.attempt.outcome"] == "ok"
    assert attempt.attributes["inferplane.runtime"] == "vllm"
    assert v.start_ns <= attempt.start_ns <= attempt.end_ns <= v.end_ns
    missing = roots["chat"]
    assert missing.attributes["http.response.status_code"] == 404 and missing.trace_id != TRACE
    # vLLM got the gateway's span as its parent; the runtime that does not trace got nothing
    (sent,) = vllm.headers_seen
    assert sent["traceparent"] == f"00-{TRACE}-{v.span_id}-01"
    assert all("traceparent" not in h for h in plain.headers_seen) and plain.headers_seen


def test_tracing_configured_without_the_sdk_fails_at_start_with_the_install_command(tmp_path: Path) -> None:
    blocker = tmp_path / "no_otel"
    (blocker / "opentelemetry").mkdir(parents=True)
    (blocker / "opentelemetry" / "__init__.py").write_text("raise ImportError('blocked for this test')\n")
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump({"gateway": {"tracing": {"otlp_endpoint": "http://127.0.0.1:9"}},
                                    "deployments": [{"name": "m", "runtime": "openai", "replicas": 0,
                                                     "endpoints": [{"url": "http://127.0.0.1:9"}]}]}))
    sp = start_serve(["--config", str(path)], tmp_path, wait_ready=False, env={"PYTHONPATH": str(blocker)})
    code = sp.proc.wait(60)
    assert code == 2, sp.log()
    assert "pip install 'inferplane[tracing]'" in sp.log()
