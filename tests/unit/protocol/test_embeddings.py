"""protocol/embeddings.py: OpenAI's embeddings request shape, and what a runtime cannot take."""

from __future__ import annotations

from typing import Any

import pytest

from inferplane.protocol.embeddings import check_embeddings


def _req(**kw: Any) -> dict[str, Any]:
    return {"model": "e", "input": "hello", **kw}


@pytest.mark.parametrize("inp", ["hello", ["a", "b"], [1, 2, 3], [[1, 2], [3]]])
def test_every_input_shape_the_sdk_sends_passes(inp: Any) -> None:
    assert check_embeddings(_req(input=inp, encoding_format="base64")) is None


@pytest.mark.parametrize(("body", "param", "code"), [
    ({"input": "x"}, "model", "missing_required_parameter"),
    ({"model": "e"}, "input", "missing_required_parameter"),
    (_req(input=""), "input", "invalid_value"),
    (_req(input=[]), "input", "invalid_type"),
    (_req(input=["a", ""]), "input[1]", "invalid_value"),
    (_req(input=["a", 3.5]), "input[1]", "invalid_type"),
    (_req(input=[[1], []]), "input[1]", "invalid_value"),
    (_req(input=["a", [1]]), "input", "invalid_value"),
    (_req(input=[-1]), "input", "invalid_value"),
    (_req(input=["x"] * 2049), "input", "invalid_value"),
    (_req(encoding_format="int8"), "encoding_format", "invalid_value"),
    (_req(dimensions=0), "dimensions", "invalid_value"),
    (_req(user=5), "user", "invalid_type"),
])
def test_bad_requests_name_the_field(body: dict[str, Any], param: str, code: str) -> None:
    p = check_embeddings(body)
    assert p is not None and (p.param, p.code) == (param, code)


def test_what_the_runtime_cannot_take_is_refused_by_name() -> None:
    p = check_embeddings(_req(dimensions=64), dimensions=False, runtime="embedded")
    assert p is not None and (p.param, p.code) == ("dimensions", "unsupported_value")
    assert check_embeddings(_req(dimensions=64), dimensions=True) is None
    p = check_embeddings(_req(input=[[1, 2]]), token_ids=False, runtime="ollama")
    assert p is not None and (p.param, p.code) == ("input", "unsupported_value")
    assert "check_embedding_ctx_length=False" in p.message
    assert check_embeddings(_req(input=["a"]), token_ids=False) is None
