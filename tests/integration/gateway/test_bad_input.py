"""Bad input gets an OpenAI-style error with the right 4xx, never a 500 or a hang."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import openai
import pytest

from helpers import ServeProcess

pytestmark = pytest.mark.integration


def _post(served: ServeProcess, path: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(served.url + path, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


CHAT = "/v1/chat/completions"
OK_MSGS = [{"role": "user", "content": "hi"}]

CASES = [
    ("malformed json", CHAT, b'{"model": "smollm2", "messages": [', 400, "invalid_json"),
    ("not an object", CHAT, b"[1, 2]", 400, "invalid_json"),
    ("missing model", CHAT, json.dumps({"messages": OK_MSGS}).encode(), 400, "missing_required_parameter"),
    ("missing messages", CHAT, json.dumps({"model": "smollm2"}).encode(), 400, "missing_required_parameter"),
    ("empty messages", CHAT, json.dumps({"model": "smollm2", "messages": []}).encode(), 400, "invalid_value"),
    ("bad role", CHAT, json.dumps({"model": "smollm2", "messages": [{"role": "robot", "content": "x"}]}).encode(),
     400, "invalid_value"),
    ("negative max_tokens", CHAT, json.dumps({"model": "smollm2", "messages": OK_MSGS, "max_tokens": -1}).encode(),
     400, "invalid_value"),
    ("string temperature", CHAT,
     json.dumps({"model": "smollm2", "messages": OK_MSGS, "temperature": "hot"}).encode(), 400, "invalid_value"),
    ("n > 1 unsupported", CHAT, json.dumps({"model": "smollm2", "messages": OK_MSGS, "n": 3}).encode(),
     400, "unsupported_value"),
    ("stream_options without stream", CHAT,
     json.dumps({"model": "smollm2", "messages": OK_MSGS, "stream_options": {"include_usage": True}}).encode(),
     400, "invalid_value"),
    ("completion without prompt", "/v1/completions", json.dumps({"model": "smollm2"}).encode(), 400,
     "missing_required_parameter"),
    ("unknown model", CHAT, json.dumps({"model": "gpt-9", "messages": OK_MSGS}).encode(), 404, "model_not_found"),
    ("body over the limit", CHAT,
     json.dumps({"model": "smollm2", "messages": [{"role": "user", "content": "x" * 300_000}]}).encode(),
     413, "request_too_large"),
]


@pytest.mark.parametrize(("name", "path", "body", "status", "code"), CASES, ids=[c[0] for c in CASES])
def test_bad_request(served: ServeProcess, name: str, path: str, body: bytes, status: int, code: str) -> None:
    got_status, got = _post(served, path, body)
    assert got_status == status, got
    err = got["error"]
    assert err["code"] == code
    assert err["message"] and err["type"]


def test_sdk_sees_not_found_for_unknown_model(served: ServeProcess) -> None:
    client = openai.OpenAI(base_url=served.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="nope", messages=OK_MSGS)
    assert exc.value.code == "model_not_found"


def test_context_overflow_is_a_400_from_the_runtime(served: ServeProcess) -> None:
    """A prompt longer than the context window: the runtime's own 400 passes through, not a 500."""
    long = "word " * 12000  # > the 8192-token context per sequence, < the 200 kB body limit
    status, got = _post(served, CHAT, json.dumps({"model": "smollm2", "messages": [
        {"role": "user", "content": long}]}).encode())
    assert status == 400, got
    assert "context" in got["error"]["message"].lower()


def test_unknown_route_is_404_and_wrong_method_405(served: ServeProcess) -> None:
    try:
        urllib.request.urlopen(served.url + "/v1/nothing", timeout=5)
    except urllib.error.HTTPError as e:
        assert e.code == 404
    try:
        urllib.request.urlopen(served.url + CHAT, timeout=5)
    except urllib.error.HTTPError as e:
        assert e.code == 405
