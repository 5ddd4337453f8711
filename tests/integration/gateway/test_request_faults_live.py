"""Issue 10.2 against the real embedded runtime (llama.cpp): bad requests cannot take the model offline.

Before: llama.cpp answers 500 to image/audio parts for a text model and to `tools` it
cannot parse; the gateway counted each as a replica failure, and after 5 of them the
breaker opened and every client got 503 model_not_ready for 10 s.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import openai
import pytest

from helpers import ServeProcess

pytestmark = pytest.mark.integration

CHAT = "/v1/chat/completions"
BAD = [
    # rejected up front from the runtime's capabilities (text parts only) and OpenAI's shape of tools
    {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]},
    {"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]},
    {"messages": [{"role": "user", "content": "hi"}], "tools": "nope"},
    {"messages": [{"role": "user", "content": "hi"}], "tools": [1]},
    # reach llama.cpp, which answers 500 "Failed to parse ...": classified by the runtime's body
    {"messages": [{"role": "user", "content": "hi"}],
     "tools": [{"type": "function", "function": {"name": "f", "description": 5}}]},
    {"messages": [{"role": "user", "content": "hi", "name": 5}]},
    {"messages": [{"role": "assistant", "content": "x", "tool_calls": "bad"}, {"role": "user", "content": "hi"}]},
]


def _post(served: ServeProcess, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(served.url + CHAT, data=json.dumps({"model": "smollm2", "max_tokens": 4, **body})
                                 .encode(), method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_requests_llamacpp_fails_with_500_are_400s_and_the_model_stays_up(served: ServeProcess) -> None:
    warnings_before = served.log().count("WARNING")
    for _ in range(2):  # 14 bad requests: well past the breaker's threshold of 5
        for body in BAD:
            status, got = _post(served, body)
            assert status == 400, (body, got)
            err = got["error"]
            assert set(err) == {"message", "type", "param", "code"}
            assert err["type"] == "invalid_request_error" and isinstance(err["code"], str), got
    client = openai.OpenAI(base_url=served.url + "/v1", api_key="x", max_retries=0)
    r = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert r.choices[0].message.content is not None
    assert all(e["breaker"] == "closed" and e["consecutive_failures"] == 0 for e in served.endpoints())
    assert served.log().count("WARNING") == warnings_before  # no upstream failure, no breaker opened
