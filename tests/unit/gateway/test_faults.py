"""Upstream error answers: whose fault, and the OpenAI-shaped body the client gets (issues 9.3, 10.2).

Bodies are as the runtimes answered: llama.cpp's from the embedded runtime on this machine
(its envelope: integer `code`, `type`, extra fields), vLLM's flat OpenAI envelope, TGI's
`{"error": "...", "error_type": ...}`, FastAPI's `{"detail": ...}`, an HTML page.
"""

from __future__ import annotations

import orjson
import pytest

from inferplane.gateway.faults import describe

LLAMA_IMAGE = (b'{"error":{"code":500,"message":"image input is not supported - hint: if this is unexpected, '
               b'you may need to provide the mmproj","type":"server_error"}}')
LLAMA_TOOLS = (b'{"error":{"code":500,"message":"Failed to parse tools: Expected \'tools\' to be an array, '
               b'got \\"nope\\"; tools = \\"nope\\"","type":"server_error"}}')
LLAMA_CONTEXT = (b'{"error":{"code":400,"message":"request (12031 tokens) exceeds the available context size '
                 b'(4096 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":12031,'
                 b'"n_ctx":4096}}')
LLAMA_N = b'{"error":{"code":400,"message":"Field \'n\': Value must be between 1 <= value <= 2, but got 3",' \
          b'"type":"invalid_request_error"}}'
LLAMA_OOM = b'{"error":{"code":500,"message":"failed to decode the batch","type":"server_error"}}'


def _err(body: bytes) -> dict:
    err = orjson.loads(body)["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["code"], str) and err["code"]
    return err


@pytest.mark.parametrize("body", [LLAMA_IMAGE, LLAMA_TOOLS])
def test_llamacpp_500s_the_request_caused_are_400s(body: bytes) -> None:
    f = describe(500, body, runtime="embedded", managed=True)
    assert f.request_fault and f.status == 400
    err = _err(f.body)
    assert err["type"] == "invalid_request_error"
    assert orjson.loads(body)["error"]["message"] in err["message"]


def test_a_llamacpp_500_that_does_not_say_so_is_the_replicas() -> None:
    f = describe(500, LLAMA_OOM, runtime="embedded", managed=True)
    assert not f.request_fault and f.status == 500
    assert _err(f.body)["type"] == "server_error"
    assert describe(500, LLAMA_OOM, runtime="vllm", managed=True, repeated=True).request_fault


def test_context_overflow_names_the_field_and_flag() -> None:
    managed = _err(describe(400, LLAMA_CONTEXT, runtime="embedded", managed=True).body)
    assert managed["code"] == "context_length_exceeded" and managed["param"] == "messages"
    assert "`context_length_tokens`" in managed["message"] and "--ctx-size" in managed["message"]
    vllm = (b'{"object":"error","message":"This model\'s maximum context length is 2048 tokens. However, you '
            b'requested 5000 tokens in the messages.","type":"BadRequestError","param":null,"code":400}')
    remote = _err(describe(400, vllm, runtime="vllm", managed=False).body)
    assert remote["code"] == "context_length_exceeded" and "--max-model-len" in remote["message"]
    assert remote["type"] == "invalid_request_error"


def test_n_names_the_parallel_setting() -> None:
    err = _err(describe(400, LLAMA_N, runtime="embedded", managed=True).body)
    assert err["param"] == "n" and "max_concurrent_sequences" in err["message"] and "--parallel" in err["message"]


@pytest.mark.parametrize(("status", "body", "text"), [
    (422, b'{"error":"Input validation error: `temperature` must be strictly positive","error_type":"validation"}',
     "temperature"),
    (400, b'{"detail":[{"msg":"field required","loc":["body","messages"]}]}', "field required"),
    (502, b"<html><head><title>502 Bad Gateway</title></head></html>", "HTML page (502 Bad Gateway)"),
    (503, b"", "answered 503"),
])
def test_any_shape_becomes_openais(status: int, body: bytes, text: str) -> None:
    f = describe(status, body, runtime="tgi", managed=False)
    assert text in _err(f.body)["message"]
    assert f.status == status
