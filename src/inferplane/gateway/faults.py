"""Upstream error answers: whose fault they are, and what the client is told.

Runs only on the error path (an upstream status >= 400); successful answers never come
here. ``describe`` reads a runtime's error body in any of the shapes runtimes use
(OpenAI's envelope, llama.cpp's envelope with an integer ``code``, the flat
``{"object": "error", ...}`` of SGLang/LMDeploy, ``{"error": "<text>"}``, FastAPI's
``{"detail": ...}``, plain text or HTML) and returns:

- the body the client gets, always OpenAI's ``{"error": {"message", "type", "param",
  "code"}}`` with ``code`` a string, and for errors that have a setting behind them
  (context length, max tokens, n, tools) a message that names the deployment field and
  the ``inferplane serve`` flag (or, for endpoints inferplane did not launch, the
  runtime's own flag);
- whether the request caused it. A 4xx always is; a 5xx is when the runtime's body says
  so (llama.cpp answers 500 to image/audio parts for a text model and to ``tools`` it
  cannot parse, 501 to features it lacks). Such an answer is not retried, does not count
  against the replica, and reaches the client as a 400. The other test - the same
  request failing the same way on a second replica - is the proxy's (``signature``).

One answer is neither the request's fault nor the replica's health: a 401/403 is the
upstream refusing the gateway's own credentials (a key set wrong, or none where one is
needed). ``refused_credentials`` words it for the operator and the client (a 502: the
client's key is not the problem), naming the variable the key comes from, never the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["REFUSED_CREDENTIALS", "UpstreamFault", "describe", "refused_credentials"]

_OPENAI_TYPES = frozenset({"invalid_request_error", "authentication_error", "permission_error", "not_found_error",
                           "rate_limit_error", "server_error", "api_error"})
_TYPE_BY_STATUS = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                   404: "not_found_error", 413: "invalid_request_error", 422: "invalid_request_error",
                   429: "rate_limit_error"}

REFUSED_CREDENTIALS = frozenset({401, 403})
"""Upstream statuses that mean "not with these credentials": the gateway's key, not the client's."""

_LLAMACPP_FAMILY = frozenset({"embedded", "llamacpp"})
_REQUEST_FAULT_5XX = {
    # llama.cpp's server turns exceptions from parsing the request into 500s: multimodal
    # parts without a projector ("image input is not supported - hint: ... mmproj"),
    # oaicompat_chat_params_parse ("Failed to parse tools: ...", "Failed to parse messages"),
    # nlohmann::json type errors ("[json.exception.type_error.302] ..."), and
    # "Unsupported param: ..." / "... is not supported".
    "llamacpp": re.compile(r"input is not supported|^failed to parse|json\.exception|^unsupported|"
                           r"is not supported|^expected |^missing |must be", re.IGNORECASE),
}

_CONTEXT = re.compile(r"context (length|size|window)|maximum context|exceeds the available context", re.IGNORECASE)
_MAX_TOKENS = re.compile(r"max_tokens|max_completion_tokens|max_new_tokens|n_predict", re.IGNORECASE)
_N = re.compile(r"field 'n'|\bn must\b|'n'", re.IGNORECASE)
_TOOLS = re.compile(r"\btools?\b|tool_choice", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")

_CONTEXT_FLAG = {"embedded": "--ctx-size", "llamacpp": "--ctx-size", "vllm": "--max-model-len",
                 "sglang": "--context-length", "lmdeploy": "--session-len", "tgi": "--max-total-tokens",
                 "max": "--max-length", "ollama": "OLLAMA_CONTEXT_LENGTH"}


@dataclass(frozen=True, slots=True)
class UpstreamFault:
    """What to make of one upstream error answer."""

    status: int
    """The status the client gets: the runtime's for a 4xx, 400 for a request-caused 5xx."""
    body: bytes
    """OpenAI's error envelope."""
    message: str
    request_fault: bool
    """The request caused it: do not retry, do not count against the replica."""
    signature: str
    """Equal for 'the same failure' on two replicas (status + message with numbers blanked)."""


def _fields(body: bytes) -> tuple[str, Any, Any, Any]:
    """(message, type, param, code) from any runtime's error body."""
    try:
        data: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            return str(err.get("message", "") or body.decode("utf-8", "replace")), err.get("type"), \
                err.get("param"), err.get("code")
        if isinstance(err, str):
            return err, data.get("error_type"), None, None
        if "message" in data:
            return str(data["message"]), data.get("type"), data.get("param"), data.get("code")
        if "detail" in data:
            detail = data["detail"]
            if isinstance(detail, list):
                return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail), \
                    None, None, None
            return str(detail), None, None, None
    text = body.decode("utf-8", "replace").strip()
    if text.startswith("<"):  # an HTML error page (a proxy in between, a web server default)
        title = re.search(r"<title>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        text = "an HTML page" + (f" ({title.group(1).strip()[:100]})" if title else "")
    return text[:1000], None, None, None


def _setting_hint(kind: str, runtime: str, managed: bool) -> str:
    flag = _CONTEXT_FLAG.get(runtime)
    if kind == "context":
        if managed:
            return ("; the context per sequence is the deployment's `context_length_tokens` "
                    "(`inferplane serve --ctx-size`): raise it, or send a shorter prompt")
        return f"; raise the runtime's own context setting ({flag or 'see its docs'}), or send a shorter prompt"
    if kind == "max_tokens":
        where = ("the deployment's `context_length_tokens` (`inferplane serve --ctx-size`)" if managed
                 else f"the runtime's context setting ({flag or 'see its docs'})")
        return f"; lower `max_tokens`, or raise {where}"
    if kind == "n":
        if runtime in _LLAMACPP_FAMILY and managed:
            return ("; `n` can be at most the deployment's `max_concurrent_sequences` "
                    "(`inferplane serve --parallel`)")
        return "; lower `n`"
    if kind == "tools":
        return f"; the deployment's runtime ({runtime}) could not use the request's `tools`"
    return ""


def _kind(message: str, err_type: Any, param: Any) -> str | None:
    if err_type == "exceed_context_size_error" or _CONTEXT.search(message):
        return "max_tokens" if _MAX_TOKENS.search(message) and "too large" in message else "context"
    if param in ("n", "tools", "tool_choice", "max_tokens"):
        return "tools" if param == "tool_choice" else str(param)
    if _N.search(message):
        return "n"
    if _MAX_TOKENS.search(message):
        return "max_tokens"
    if _TOOLS.search(message):
        return "tools"
    return None


_CODES = {"context": "context_length_exceeded", "max_tokens": "invalid_value", "n": "invalid_value",
          "tools": "invalid_value"}
_PARAMS = {"context": "messages", "max_tokens": "max_tokens", "n": "n", "tools": "tools"}


def describe(status: int, body: bytes, *, runtime: str, managed: bool, repeated: bool = False) -> UpstreamFault:
    """The client's view of an upstream error answer (``status`` >= 400).

    ``repeated``: a second replica answered this request the same way, so it is the request's fault.
    """
    message, err_type, param, code = _fields(body)
    family = "llamacpp" if runtime in _LLAMACPP_FAMILY else runtime
    marker = _REQUEST_FAULT_5XX.get(family)
    request_fault = repeated or status < 500 or status == 501 or (
        marker is not None and err_type in (None, "server_error") and marker.search(message) is not None)
    if not request_fault and err_type in ("invalid_request_error", "not_supported_error"):
        request_fault = True  # the runtime typed it a client error, whatever status it chose
    kind = _kind(message, err_type, param) if request_fault else None
    out_status = status if status < 500 else (400 if request_fault else status)
    if not message:
        message = f"the runtime answered {status}"
    shown = message.rstrip(" .") + _setting_hint(kind, runtime, managed) if kind else message
    if status >= 500 and request_fault:
        why = "the same request failed the same way on two replicas" if repeated else "the request caused it"
        shown += f" (the {runtime} runtime answered {status}; {why})"
    out_type = err_type if err_type in _OPENAI_TYPES else _TYPE_BY_STATUS.get(
        out_status, "invalid_request_error" if out_status < 500 else "server_error")
    if request_fault and out_type in ("server_error", "api_error"):
        out_type = "invalid_request_error"
    if isinstance(code, str) and code:
        out_code = code
    elif kind is not None:
        out_code = _CODES[kind]
    elif isinstance(err_type, str) and err_type.endswith("_error") and err_type not in (out_type, "server_error"):
        out_code = err_type.removesuffix("_error")
    elif request_fault and out_status == 400:
        out_code = "invalid_request"
    else:
        out_code = f"upstream_status_{status}"
    out_param = param if isinstance(param, str) else (_PARAMS.get(kind) if kind else None)
    out = orjson.dumps({"error": {"message": shown, "type": out_type, "param": out_param, "code": out_code}})
    return UpstreamFault(out_status, out, shown, request_fault, f"{status}:{_DIGITS.sub('#', message)[:200]}")


def refused_credentials(endpoint_id: str, url: str, status: int, key_source: str) -> str:
    """Why ``endpoint_id`` answered ``status`` (401/403) to the gateway, and what to set.

    ``key_source``: where the endpoint's key comes from (``$VLLM_API_KEY``), "" when none is
    configured. Never holds the key itself.
    """
    if key_source:
        return (f"endpoint {endpoint_id} ({url}) refused the gateway's credentials ({status}): it does not accept "
                f"the API key in {key_source} (api_key_env); put the key it expects in that variable and restart "
                "or reload inferplane")
    return (f"endpoint {endpoint_id} ({url}) wants an API key ({status}) and none is configured for it: set the "
            "endpoint's (or its deployment's) api_key_env to the environment variable that holds its key")
