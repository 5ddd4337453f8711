"""A dialect for OpenAI-speaking runtimes whose error bodies are not OpenAI's envelope.

Requests and successful answers pass unchanged (streams too, byte for byte); only an
error answer (status >= 400) is rewritten into ``{"error": {"message", "type", "param",
"code"}}`` so clients see the same errors whichever runtime served them. Shapes handled:

- flat ``{"object": "error", "message", "type", "param", "code"}`` (SGLang, LMDeploy,
  TensorRT-LLM, MLC-LLM);
- ``{"error": "<text>", "error_type": "validation"}`` (TGI) and ``{"error": "<text>"}``
  (TensorRT-LLM request validation, Ollama);
- FastAPI's ``{"detail": ...}``; anything else becomes the message text.
"""

from __future__ import annotations

from typing import Any

import orjson

from inferplane.runtimes.base import Dialect

__all__ = ["ErrorNormalizingDialect", "openai_error"]

_TYPE_BY_STATUS = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                   404: "not_found_error", 422: "invalid_request_error", 429: "rate_limit_error"}


def _default_type(status: int) -> str:
    return _TYPE_BY_STATUS.get(status, "invalid_request_error" if status < 500 else "api_error")


def openai_error(status: int, body: bytes) -> bytes:
    """``body`` (a runtime's error answer) as an OpenAI error body; OpenAI bodies come back unchanged."""
    try:
        data: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, str) and data.startswith("{"):
        # MLC-LLM hands JSONResponse an already-dumped string: its error body is JSON inside a JSON string.
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    if isinstance(data, dict) and isinstance(data.get("error"), dict) and "message" in data["error"]:
        return body
    message: str
    err_type: Any = None
    param: Any = None
    code: Any = None
    if isinstance(data, dict):
        if isinstance(data.get("error"), str):
            message, err_type = data["error"], data.get("error_type")
        elif "message" in data:
            message = str(data["message"])
            err_type, param, code = data.get("type"), data.get("param"), data.get("code")
        elif "detail" in data:
            detail = data["detail"]
            if isinstance(detail, list):
                message = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
            else:
                message = str(detail)
        else:
            message = body.decode("utf-8", "replace")
    else:
        message = body.decode("utf-8", "replace").strip() or f"upstream answered {status}"
    return orjson.dumps({"error": {
        "message": message,
        "type": err_type if isinstance(err_type, str) and err_type else _default_type(status),
        "param": param if isinstance(param, str) else None,
        "code": code if isinstance(code, str) else None,
    }})


class ErrorNormalizingDialect(Dialect):
    """OpenAI paths and bodies, with error answers rewritten into OpenAI's envelope.

    The request body and 2xx answers are forwarded untouched and streams pass through
    (``stream()`` returns None), so the only cost over plain passthrough is one call.
    """

    passthrough = False

    def __init__(self, name: str) -> None:
        self.name = name

    def request(self, route: str, body: dict[str, Any], raw: bytes) -> tuple[str, bytes]:
        return (self.chat_path if route == "chat" else self.completions_path), raw

    def response(self, route: str, model: str, status: int, body: bytes) -> tuple[int, bytes]:
        if status < 400:
            return status, body
        return status, openai_error(status, body)
