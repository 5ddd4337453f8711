"""OpenAI's Responses API (``POST /v1/responses``) served over chat completions: pure translation.

For runtimes without a ``/v1/responses`` of their own, a Responses request becomes one chat
request (``to_chat``), and the chat answer becomes a Response object (``to_response``) or,
streamed, Responses events (``ResponsesStream``). Runtimes that have the route (vLLM) get the
request bytes as they came.

Every field follows openai-python's types (``src/openai/types/responses/``, see
tests/fixtures/responses/provenance.json): the request ``response_create_params.py``; the
answer ``response.py``, ``response_output_message.py``, ``response_output_text.py``,
``response_function_tool_call.py``, ``response_usage.py``; the stream ``response_created_event.py``,
``response_in_progress_event.py``, ``response_output_item_added_event.py``,
``response_content_part_added_event.py``, ``response_text_delta_event.py``,
``response_text_done_event.py``, ``response_content_part_done_event.py``,
``response_output_item_done_event.py``, ``response_function_call_arguments_delta_event.py``,
``response_function_call_arguments_done_event.py``, ``response_completed_event.py``,
``response_error_event.py``. Events go out as ``event: <type>`` + ``data: <json>`` with a
``sequence_number`` counting from 0.

What cannot be honoured without server-side state or hosted tools (``previous_response_id``,
``conversation``, ``background``, ``prompt``, web/file search...) is a 400 naming the field.
Nothing is stored: ``store`` is accepted, but no ``GET /v1/responses/{id}`` is served.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from inferplane.protocol.openai import RequestProblem

__all__ = ["ResponsesStream", "check_responses", "new_response_id", "to_chat", "to_response"]

_ACCEPTED = frozenset({
    "model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "stream", "tools",
    "tool_choice", "parallel_tool_calls", "user", "metadata", "store", "text", "truncation", "include",
    "stream_options", "safety_identifier", "prompt_cache_key", "service_tier", "reasoning",
})
"""Request fields translated (or harmless to leave out of a chat request); any other known
field of response_create_params.py needs state or hosted tools the gateway does not have."""

_ROLES = frozenset({"user", "assistant", "system", "developer"})


def new_response_id() -> str:
    return "resp_" + os.urandom(12).hex()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _problem(message: str, param: str, code: str = "invalid_value") -> RequestProblem:
    return RequestProblem(message, param, code)


def check_responses(body: dict[str, Any]) -> RequestProblem | None:
    """Problem with a ``/v1/responses`` body, or None (then ``to_chat`` cannot fail)."""
    for key in body:
        if key not in _ACCEPTED:
            return _problem(f"'{key}' is not supported by this gateway's Responses API (it keeps no state and "
                            "runs no hosted tools)", key, "unsupported_parameter")
    model = body.get("model")
    if model is None:
        return _problem("you must provide a model parameter", "model", "missing_required_parameter")
    if not isinstance(model, str) or not model:
        return _problem("'model' must be a non-empty string", "model", "invalid_type")
    inp = body.get("input")
    if inp is None:
        return _problem("you must provide an 'input' parameter", "input", "missing_required_parameter")
    if isinstance(inp, str):
        if not inp:
            return _problem("'input' cannot be an empty string", "input")
    elif not isinstance(inp, list) or not inp:
        return _problem("'input' must be a string or a non-empty array of input items", "input", "invalid_type")
    else:
        for i, item in enumerate(inp):
            problem = _check_item(item, f"input[{i}]")
            if problem is not None:
                return problem
    instr = body.get("instructions")
    if instr is not None and not isinstance(instr, str):
        return _problem("'instructions' must be a string", "instructions", "invalid_type")
    mot = body.get("max_output_tokens")
    if mot is not None and (not _is_int(mot) or mot < 1):
        return _problem(f"'max_output_tokens' must be an integer >= 1, got {mot!r}", "max_output_tokens")
    for key, lo, hi in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        v = body.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi):
            return _problem(f"'{key}' must be a number in [{lo}, {hi}], got {v!r}", key)
    if body.get("stream") not in (None, True, False):
        return _problem("'stream' must be a boolean", "stream", "invalid_type")
    if body.get("background"):
        return _problem("'background' responses need server-side state", "background", "unsupported_parameter")
    if body.get("reasoning") is not None:
        return _problem("'reasoning' is not supported over chat runtimes", "reasoning", "unsupported_parameter")
    if body.get("truncation") not in (None, "disabled"):
        return _problem("'truncation' must be 'disabled' here (the gateway does not drop input)", "truncation",
                        "unsupported_value")
    include = body.get("include")
    if include:
        return _problem("'include' asks for extra output this gateway does not produce", "include",
                        "unsupported_value")
    return _check_text(body.get("text")) or _check_tools(body)


def _check_item(item: Any, where: str) -> RequestProblem | None:
    if not isinstance(item, dict):
        return _problem(f"'{where}' must be an object", where, "invalid_type")
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in _ROLES:
            return _problem(f"'{where}.role' must be one of {', '.join(sorted(_ROLES))}; got {role!r}",
                            where + ".role")
        content = item.get("content")
        if isinstance(content, str):
            return None
        if not isinstance(content, list):
            return _problem(f"'{where}.content' must be a string or an array of content parts",
                            where + ".content", "invalid_type")
        for j, part in enumerate(content):
            ptype = part.get("type") if isinstance(part, dict) else None
            if ptype in ("input_text", "output_text"):
                if not isinstance(part.get("text"), str):
                    return _problem(f"'{where}.content[{j}].text' must be a string", f"{where}.content[{j}].text",
                                    "invalid_type")
            elif ptype == "input_image":
                if not isinstance(part.get("image_url"), str):
                    return _problem(f"'{where}.content[{j}].image_url' must be a URL string (file_id images "
                                    "need file storage)", f"{where}.content[{j}].image_url", "unsupported_value")
            else:
                return _problem(f"'{where}.content[{j}].type' must be 'input_text', 'output_text' or "
                                f"'input_image'; got {ptype!r}", f"{where}.content[{j}].type", "unsupported_value")
        return None
    if kind == "function_call":
        for key in ("call_id", "name", "arguments"):
            if not isinstance(item.get(key), str):
                return _problem(f"'{where}.{key}' must be a string", f"{where}.{key}", "invalid_type")
        return None
    if kind == "function_call_output":
        if not isinstance(item.get("call_id"), str) or not isinstance(item.get("output"), str):
            return _problem(f"'{where}' needs string 'call_id' and 'output'", where, "invalid_type")
        return None
    return _problem(f"'{where}.type' {kind!r} is not supported here (messages, function_call and "
                    "function_call_output are)", where + ".type", "unsupported_value")


def _check_text(text: Any) -> RequestProblem | None:
    if text is None:
        return None
    fmt = text.get("format") if isinstance(text, dict) else None
    if fmt is None:
        return None if isinstance(text, dict) else _problem("'text' must be an object", "text", "invalid_type")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        return _problem("'text.format.type' must be 'text', 'json_object' or 'json_schema'", "text.format.type")
    if kind == "json_schema" and not (isinstance(fmt.get("schema"), dict) and isinstance(fmt.get("name"), str)):
        return _problem("'text.format' of type json_schema needs a 'name' and a 'schema' object", "text.format")
    return None


def _check_tools(body: dict[str, Any]) -> RequestProblem | None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return _problem("'tools' must be an array", "tools", "invalid_type")
        for i, t in enumerate(tools):
            kind = t.get("type") if isinstance(t, dict) else None
            if kind != "function":
                return _problem(f"'tools[{i}].type' {kind!r} is a hosted tool this gateway cannot run; only "
                                "'function' tools are supported", f"tools[{i}].type", "unsupported_value")
            if not isinstance(t.get("name"), str):
                return _problem(f"'tools[{i}].name' must be a string", f"tools[{i}].name", "invalid_type")
    choice = body.get("tool_choice")
    if choice is None or choice in ("none", "auto", "required"):
        return None
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return None
    return _problem("'tool_choice' must be 'none', 'auto', 'required' or {\"type\": \"function\", \"name\": ...}",
                    "tool_choice")


# -- request ---------------------------------------------------------------------------------------


def _content(content: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for p in content:
        if p["type"] == "input_image":
            parts.append({"type": "image_url", "image_url": {"url": p["image_url"]}})
        else:
            parts.append({"type": "text", "text": p["text"]})
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)  # a plain string: every chat template takes that
    return parts


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    if body.get("instructions"):
        msgs.append({"role": "system", "content": body["instructions"]})
    inp = body["input"]
    if isinstance(inp, str):
        msgs.append({"role": "user", "content": inp})
        return msgs
    for item in inp:
        kind = item.get("type", "message")
        if kind == "message":
            msgs.append({"role": item["role"], "content": _content(item["content"])})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            last = msgs[-1] if msgs else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)  # parallel calls: one assistant turn
            else:
                msgs.append({"role": "assistant", "content": None, "tool_calls": [call]})
        else:  # function_call_output
            msgs.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
    return msgs


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat completions request for a checked Responses request (pure)."""
    chat: dict[str, Any] = {"model": body["model"], "messages": _messages(body)}
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    for key in ("temperature", "top_p", "parallel_tool_calls", "user"):
        if body.get(key) is not None:
            chat[key] = body[key]
    tools = body.get("tools")
    if tools:
        chat["tools"] = [{"type": "function", "function": {
            k: t[k] for k in ("name", "description", "parameters", "strict") if t.get(k) is not None}}
            for t in tools]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif choice is not None:
        chat["tool_choice"] = choice
    fmt = (body.get("text") or {}).get("format")
    if fmt and fmt["type"] == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif fmt and fmt["type"] == "json_schema":
        chat["response_format"] = {"type": "json_schema", "json_schema": {
            k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}}
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


# -- answer ----------------------------------------------------------------------------------------


def _usage(u: dict[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(u, dict):
        return None
    inp, out = int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
    cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return {"input_tokens": inp, "input_tokens_details": {"cached_tokens": int(cached), "cache_write_tokens": 0},
            "output_tokens": out, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": inp + out}


def _shell(body: dict[str, Any], rid: str, created_at: float, status: str) -> dict[str, Any]:
    """A Response object with no output yet: the request's settings echoed as OpenAI does."""
    fmt = (body.get("text") or {}).get("format") or {"type": "text"}
    return {
        "id": rid, "object": "response", "created_at": created_at, "status": status, "model": body["model"],
        "output": [], "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True), "previous_response_id": None,
        "temperature": body.get("temperature"), "top_p": body.get("top_p"),
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
        "text": {"format": fmt}, "truncation": "disabled", "usage": None, "user": body.get("user"),
        "store": False,
    }


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


def _finish(resp: dict[str, Any], finish_reason: str | None) -> None:
    if finish_reason == "length":
        resp["status"] = "incomplete"
        resp["incomplete_details"] = {"reason": "max_output_tokens"}
    elif finish_reason == "content_filter":
        resp["status"] = "incomplete"
        resp["incomplete_details"] = {"reason": "content_filter"}
    else:
        resp["status"] = "completed"


def to_response(chat: dict[str, Any], body: dict[str, Any], *, rid: str, created_at: float | None = None) -> dict[
        str, Any]:
    """The Response object for a chat completion answer (``body``: the Responses request). Pure.

    Raises ValueError for a chat answer without ``choices``.
    """
    choices = chat.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError("the chat answer has no choices")
    choice = choices[0]
    msg = choice.get("message") or {}
    resp = _shell(body, rid, created_at if created_at is not None else time.time(), "completed")
    _finish(resp, choice.get("finish_reason"))
    done = "incomplete" if resp["status"] == "incomplete" else "completed"
    text = msg.get("content")
    if isinstance(text, str) and text:
        resp["output"].append(_message_item("msg_" + rid[5:], text, done))
    for i, call in enumerate(msg.get("tool_calls") or []):
        fn = call.get("function") or {}
        resp["output"].append(_call_item(f"fc_{rid[5:]}_{i}", call.get("id") or f"call_{rid[5:]}_{i}",
                                         fn.get("name") or "", fn.get("arguments") or "", "completed"))
    if not resp["output"]:
        resp["output"].append(_message_item("msg_" + rid[5:], "", done))
    resp["usage"] = _usage(chat.get("usage"))
    return resp


@dataclass(slots=True)
class _Call:
    index: int
    item_id: str
    call_id: str
    name: str
    arguments: list[str] = field(default_factory=list)


class ResponsesStream:
    """Chat completion SSE bytes in, Responses SSE events out; one per streamed request.

    ``feed`` takes upstream bytes as they come (events may be split anywhere) and returns
    the events they complete; ``end`` closes the response (``response.completed``). An
    upstream ``{"error": ...}`` event becomes an ``error`` event. Not thread-safe.
    """

    def __init__(self, body: dict[str, Any], *, rid: str, created_at: float | None = None) -> None:
        self._body = body
        self._rid = rid
        self._resp = _shell(body, rid, created_at if created_at is not None else time.time(), "in_progress")
        self._seq = 0
        self._buf = b""
        self._started = False
        self._text: list[str] | None = None  # None until the message item opened
        self._msg_index = 0
        self._calls: dict[int, _Call] = {}
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None
        self._ended = False

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _start(self) -> bytes:
        self._started = True
        snap = dict(self._resp)
        return self._event("response.created", response=snap) + self._event("response.in_progress", response=snap)

    def _next_index(self) -> int:
        return (1 if self._text is not None else 0) + len(self._calls)

    def feed(self, chunk: bytes) -> bytes:
        self._buf += chunk
        out = [] if self._started else [self._start()]
        while True:
            cut = self._buf.find(b"\n\n")
            if cut < 0:
                break
            raw, self._buf = self._buf[:cut], self._buf[cut + 2:]
            for line in raw.split(b"\n"):
                if line.startswith(b"data:"):
                    out.append(self._data(line[5:].strip()))
        return b"".join(out)

    def _data(self, payload: bytes) -> bytes:
        if payload == b"[DONE]" or not payload:
            return b""
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return b""
        if not isinstance(obj, dict):
            return b""
        if "error" in obj:
            err = obj["error"] if isinstance(obj["error"], dict) else {"message": str(obj["error"])}
            self._ended = True
            code = err.get("code")
            return self._event("error", code=None if code is None else str(code), message=str(err.get("message") or "upstream error"),
                               param=err.get("param"))
        if isinstance(obj.get("usage"), dict):
            self._usage = obj["usage"]
        out: list[bytes] = []
        for choice in obj.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                out.append(self._text_delta(text))
            for tc in delta.get("tool_calls") or []:
                out.append(self._call_delta(tc))
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return b"".join(out)

    def _text_delta(self, text: str) -> bytes:
        out = b""
        item_id = "msg_" + self._rid[5:]
        if self._text is None:
            self._text = []
            self._msg_index = self._next_index()
            out += self._event("response.output_item.added", output_index=self._msg_index,
                               item={**_message_item(item_id, "", "in_progress"), "content": []})
            out += self._event("response.content_part.added", item_id=item_id, output_index=self._msg_index,
                               content_index=0, part={"type": "output_text", "text": "", "annotations": [],
                                                      "logprobs": []})
        self._text.append(text)
        return out + self._event("response.output_text.delta", item_id=item_id, output_index=self._msg_index,
                                 content_index=0, delta=text, logprobs=[])

    def _call_delta(self, tc: dict[str, Any]) -> bytes:
        idx = tc.get("index", 0)
        fn = tc.get("function") or {}
        out = b""
        call = self._calls.get(idx)
        if call is None:
            n = self._next_index()
            call = self._calls[idx] = _Call(n, f"fc_{self._rid[5:]}_{idx}", tc.get("id") or f"call_{self._rid[5:]}_{idx}",
                                            fn.get("name") or "")
            out += self._event("response.output_item.added", output_index=n,
                               item=_call_item(call.item_id, call.call_id, call.name, "", "in_progress"))
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            call.arguments.append(args)
            out += self._event("response.function_call_arguments.delta", item_id=call.item_id,
                               output_index=call.index, delta=args)
        return out

    def end(self) -> bytes:
        """The closing events, once the upstream stream ended cleanly (nothing after an error)."""
        if self._ended:
            return b""
        self._ended = True
        out = [] if self._started else [self._start()]
        resp = self._resp
        _finish(resp, self._finish)
        done = "incomplete" if resp["status"] == "incomplete" else "completed"
        items: list[tuple[int, dict[str, Any]]] = []
        if self._text is None and not self._calls:  # nothing generated: still one (empty) message
            out.append(self._open_empty())
            self._text = []
        if self._text is not None:
            item_id = "msg_" + self._rid[5:]
            text = "".join(self._text)
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            out.append(self._event("response.output_text.done", item_id=item_id, output_index=self._msg_index,
                                   content_index=0, text=text, logprobs=[]))
            out.append(self._event("response.content_part.done", item_id=item_id, output_index=self._msg_index,
                                   content_index=0, part=part))
            item = _message_item(item_id, text, done)
            out.append(self._event("response.output_item.done", output_index=self._msg_index, item=item))
            items.append((self._msg_index, item))
        for call in self._calls.values():
            args = "".join(call.arguments)
            out.append(self._event("response.function_call_arguments.done", item_id=call.item_id,
                                   output_index=call.index, arguments=args))
            item = _call_item(call.item_id, call.call_id, call.name, args, "completed")
            out.append(self._event("response.output_item.done", output_index=call.index, item=item))
            items.append((call.index, item))
        resp["output"] = [item for _, item in sorted(items, key=lambda x: x[0])]
        resp["usage"] = _usage(self._usage)
        out.append(self._event("response.completed", response=resp))
        return b"".join(out)

    def _open_empty(self) -> bytes:
        item_id = "msg_" + self._rid[5:]
        self._msg_index = self._next_index()
        return (self._event("response.output_item.added", output_index=self._msg_index,
                            item={**_message_item(item_id, "", "in_progress"), "content": []})
                + self._event("response.content_part.added", item_id=item_id, output_index=self._msg_index,
                              content_index=0, part={"type": "output_text", "text": "", "annotations": [],
                                                     "logprobs": []}))
