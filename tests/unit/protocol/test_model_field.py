"""The hot path's rewrite of a request's top-level "model" value."""

from __future__ import annotations

import json

import orjson
import pytest

from inferplane.protocol.model_field import replace_model


@pytest.mark.parametrize("body", [
    b'{"model":"remote-llama","messages":[{"role":"user","content":"hi"}]}',
    b'{"messages":[{"role":"user","content":"hi"}],"model":"remote-llama","stream":true}',  # the SDK's order
    b'{ "messages": [ {"role": "user", "content": "the \\"model\\": field"} ],\n  "model" :  "remote-llama" }',
    b'{"messages":[{"role":"user","content":"model"}],"model":"remote-llama"}',  # the word as a value
    json.dumps({"messages": [{"role": "user", "content": "h\u00e9 " * 50}], "model": "remote-llama"}).encode(),
])
def test_only_the_model_value_changes_and_the_rest_stays_byte_for_byte(body: bytes) -> None:
    out = replace_model(body, "remote-llama", "smollm2-vllm")
    assert out is not None
    assert orjson.loads(out) == {**orjson.loads(body), "model": "smollm2-vllm"}
    assert out.replace(b'"smollm2-vllm"', b'"remote-llama"') == body


@pytest.mark.parametrize("body", [
    # a tool whose parameters have a "model" property: two keys, the scan cannot tell which is top level
    b'{"tools":[{"type":"function","function":{"name":"f","parameters":{"properties":{"model":{"type":"string"}}}}}],'
    b'"model":"remote-llama"}',
    b'{"metadata":{"x\\"model":"remote-llama"},"model":"remote-llama"}',  # a key ending in \"model
    b'{"model":"remote\\u002dllama"}',  # the value spelled with an escape orjson would not use
])
def test_unsure_cases_answer_none_so_the_caller_reencodes(body: bytes) -> None:
    assert replace_model(body, "remote-llama", "smollm2-vllm") is None
