"""Checks of ``POST /v1/embeddings`` bodies, OpenAI's shape.

The request's fields as openai-python types them (``src/openai/types/embedding_create_params.py``):
``input`` (a string, a list of strings, a list of token ids, or a list of token-id lists),
``model``, ``encoding_format`` ("float" | "base64"), ``dimensions`` (int), ``user``. The
answer (``create_embedding_response.py``, ``embedding.py``) passes through from the runtime.

What a runtime cannot take is refused here, with a 400 that names the field, instead of
a runtime's 500 or a silently different answer: token-id input where the runtime reads
only text, ``dimensions`` where the runtime always returns the model's full width
(llama.cpp ignores the field: measured, every vector kept its 576 values). O(number of
inputs), never O(input length).
"""

from __future__ import annotations

from typing import Any

from inferplane.protocol.openai import RequestProblem

__all__ = ["MAX_EMBEDDING_INPUTS", "check_embeddings", "has_token_ids"]

MAX_EMBEDDING_INPUTS = 2048
"""OpenAI's limit on inputs per request (embedding_create_params.py: 'must be 2048 dimensions or less')."""

_FORMATS = ("float", "base64")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def has_token_ids(inp: Any) -> bool:
    """True if ``input`` is token ids (a list of ints or a list of int lists)."""
    if not isinstance(inp, list) or not inp:
        return False
    first = inp[0]
    return _is_int(first) or isinstance(first, list)


def _check_input(inp: Any) -> RequestProblem | None:
    if inp is None:
        return RequestProblem("you must provide an 'input' parameter", "input", "missing_required_parameter")
    if isinstance(inp, str):
        return RequestProblem("'input' cannot be an empty string", "input", "invalid_value") if not inp else None
    if not isinstance(inp, list) or not inp:
        return RequestProblem("'input' must be a non-empty string, array of strings, array of token ids or "
                              "array of token-id arrays", "input", "invalid_type")
    if len(inp) > MAX_EMBEDDING_INPUTS:
        return RequestProblem(f"'input' holds {len(inp)} items; at most {MAX_EMBEDDING_INPUTS} per request",
                              "input", "invalid_value")
    if all(_is_int(x) for x in inp):
        return None if all(x >= 0 for x in inp) else RequestProblem(
            "'input' token ids must be integers >= 0", "input", "invalid_value")
    for i, item in enumerate(inp):
        if isinstance(item, str):
            if not item:
                return RequestProblem(f"'input[{i}]' cannot be an empty string", f"input[{i}]", "invalid_value")
        elif isinstance(item, list):
            if not item or not all(_is_int(x) and x >= 0 for x in item):
                return RequestProblem(f"'input[{i}]' must be a non-empty array of token ids (integers >= 0)",
                                      f"input[{i}]", "invalid_value")
        else:
            return RequestProblem(f"'input[{i}]' must be a string or an array of token ids", f"input[{i}]",
                                  "invalid_type")
    kinds = {isinstance(x, str) for x in inp}
    if len(kinds) > 1:
        return RequestProblem("'input' mixes strings and token-id arrays; send one kind per request", "input",
                              "invalid_value")
    return None


def check_embeddings(body: dict[str, Any], *, token_ids: bool = True, dimensions: bool = True,
                     runtime: str = "") -> RequestProblem | None:
    """Problem with an embeddings body, or None.

    ``token_ids``/``dimensions``: whether the serving runtime takes token-id input and
    honours ``dimensions`` (when not, a request that uses them gets ``unsupported_value``).
    """
    model = body.get("model")
    if model is None:
        return RequestProblem("you must provide a model parameter", "model", "missing_required_parameter")
    if not isinstance(model, str) or not model:
        return RequestProblem("'model' must be a non-empty string", "model", "invalid_type")
    problem = _check_input(body.get("input"))
    if problem is not None:
        return problem
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in _FORMATS:
        return RequestProblem(f"'encoding_format' must be 'float' or 'base64'; got {fmt!r}", "encoding_format",
                              "invalid_value")
    dims = body.get("dimensions")
    if dims is not None:
        if not _is_int(dims) or dims < 1:
            return RequestProblem(f"'dimensions' must be an integer >= 1, got {dims!r}", "dimensions",
                                  "invalid_value")
        if not dimensions:
            return RequestProblem(f"this model's runtime ({runtime}) always returns the model's full embedding "
                                  "width and cannot shorten it; leave out 'dimensions'", "dimensions",
                                  "unsupported_value")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        return RequestProblem("'user' must be a string", "user", "invalid_type")
    if not token_ids and has_token_ids(body["input"]):
        return RequestProblem(f"this model's runtime ({runtime}) embeds text only, not token ids; send 'input' "
                              "as a string or an array of strings (LangChain: OpenAIEmbeddings("
                              "check_embedding_ctx_length=False))", "input", "unsupported_value")
    return None
