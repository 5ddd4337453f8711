"""Hypothesis-generated request bodies for every field of chat/completions and completions, against
a real `inferplane serve` in front of a fake upstream.

Each field gets a mix of valid values, values of the wrong type and arbitrary JSON; every answer
must come within a bound, be a 2xx or a 4xx in OpenAI's error shape (never a 5xx: the fake upstream
answers whatever gets through), and afterwards the gateway and the upstream still answer and the
gateway's RSS is back within a bound. Examples are bounded (about 300 in all, ~20-40 s here).
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest
from hostile_client import rss_mb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import ServeProcess, http_get, start_serve

pytestmark = pytest.mark.integration

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ANSWER_WITHIN_S = 15.0
RSS_BOUND_MB = 40.0

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def _field(valid: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(valid, json_values)


content_parts = st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "input_audio", "x"]),
                                                "text": _field(st.text(max_size=30))}), max_size=3)
message = st.fixed_dictionaries(
    {"role": _field(st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "robot"])),
     "content": _field(st.text(max_size=60) | content_parts)},
    optional={"name": _field(st.text(max_size=10)), "tool_call_id": _field(st.text(max_size=10)),
              "tool_calls": json_values},
)
COMMON = {
    "model": _field(st.sampled_from(["m", "m", "m", "nope", ""])),
    "stream": _field(st.booleans()),
    "max_tokens": _field(st.integers(-5, 64)),
    "max_completion_tokens": _field(st.integers(-5, 64)),
    "temperature": _field(st.floats(-1, 3)),
    "top_p": _field(st.floats(-0.5, 1.5)),
    "presence_penalty": _field(st.floats(-3, 3)),
    "frequency_penalty": _field(st.floats(-3, 3)),
    "seed": _field(st.integers(-(2**64), 2**64)),
    "n": _field(st.integers(-1, 200)),
    "stop": _field(st.text(max_size=5) | st.lists(st.text(max_size=5), max_size=20)),
    "stream_options": _field(st.fixed_dictionaries({"include_usage": _field(st.booleans())})),
    "response_format": _field(st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object", "json_schema",
                                                                              "yaml"])},
                                                    optional={"json_schema": json_values})),
    "user": _field(st.text(max_size=20)),
    "logit_bias": json_values,
    "tools": json_values,
    "tool_choice": json_values,
    "parallel_tool_calls": json_values,
    "metadata": json_values,
    "suffix": json_values,
    "echo": json_values,
    "best_of": json_values,
}
chat_bodies = st.fixed_dictionaries(
    {"messages": _field(st.lists(message, max_size=4))},
    optional={**COMMON, "logprobs": _field(st.booleans()), "top_logprobs": _field(st.integers(-2, 30))},
)
completion_bodies = st.fixed_dictionaries(
    {"prompt": _field(st.text(max_size=60) | st.lists(st.text(max_size=10), max_size=3)
                      | st.lists(st.integers(0, 50_000), max_size=8))},
    optional={**COMMON, "logprobs": _field(st.integers(-2, 8))},
)


def _serve(tmp_path: Path, upstream: str) -> ServeProcess:
    path = tmp_path / "deploy.yaml"
    path.write_text(json.dumps({"gateway": {"scrape_interval_s": 1},
                                "deployments": [{"name": "m", "runtime": "openai", "replicas": 0,
                                                 "endpoints": [{"url": upstream}]}]}))
    return start_serve(["--config", str(path)], tmp_path, ready_timeout=60)


class _Client:
    """One kept-alive connection, reopened when the gateway closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=ANSWER_WITHIN_S)

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):
            try:
                self.conn.request("POST", path, body, {"Content-Type": "application/json"})
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=ANSWER_WITHIN_S)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def _check(status: int, body: bytes, sent: dict) -> None:
    assert status < 500, f"{status} for {sent!r}: {body[:300]!r}"
    if status >= 400:
        err = json.loads(body)["error"]
        assert err["message"] and err["type"], body
    elif sent.get("stream") is True:
        assert body.rstrip().endswith(b"data: [DONE]"), body[-200:]
    else:
        assert json.loads(body)["choices"], body


def test_generated_bodies_never_get_a_5xx(tmp_path: Path, fake_server) -> None:
    upstream = fake_server(ttft_s=0, itl_s=0, output_len=2)
    sp = _serve(tmp_path, upstream)
    client = _Client(sp.port)
    try:
        for _ in range(3):
            client.post("/v1/chat/completions", b'{"model":"m","messages":[{"role":"user","content":"hi"}]}')
        rss0 = rss_mb(sp.proc.pid)

        @SETTINGS
        @given(body=chat_bodies)
        def chat(body: dict) -> None:
            _check(*client.post("/v1/chat/completions", json.dumps(body).encode()), body)

        @SETTINGS
        @given(body=completion_bodies)
        def completions(body: dict) -> None:
            _check(*client.post("/v1/completions", json.dumps(body).encode()), body)

        chat()
        completions()
        assert http_get(sp.url + "/health")[0] == 200
        assert http_get(upstream + "/v1/models")[0] == 200
        assert rss_mb(sp.proc.pid) - rss0 < RSS_BOUND_MB
    finally:
        client.conn.close()
        assert sp.stop() == 0


def test_generated_bodies_against_a_live_model_leave_it_serving(served: ServeProcess) -> None:
    """A bounded sample against the real embedded runtime (max_tokens forced to 2 so that the
    model's time stays small): no 5xx, and the runtime process is still there afterwards."""
    pids = served.runtime_pids()
    client = _Client(served.port)
    live = settings(SETTINGS, max_examples=40)

    @live
    @given(body=chat_bodies)
    def chat(body: dict) -> None:
        if isinstance(body.get("model"), str) and body["model"] == "m":
            body["model"] = "smollm2"
        body["max_tokens"] = 2
        body.pop("max_completion_tokens", None)
        _check(*client.post("/v1/chat/completions", json.dumps(body).encode()), body)

    try:
        chat()
    finally:
        client.conn.close()
    assert served.runtime_pids() == pids and pids
    assert http_get(served.url + "/ready")[0] == 200
