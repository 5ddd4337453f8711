"""Ollama's API served over any runtime: Ollama requests -> OpenAI, OpenAI answers -> Ollama.

The other direction of ``protocol/ollama.py`` (same field correspondences, see there), for
clients written against Ollama (``ollama`` Python/JS clients, Open WebUI, LangChain's
ChatOllama). Shapes follow ollama/ollama ``api/types.go``:

- ``/api/chat`` -> an OpenAI chat request; ``/api/generate`` -> a chat request with the
  prompt as the user turn (and ``system`` before it), or with ``raw: true`` a completions
  request (the prompt verbatim, as Ollama skips the template);
- ``stream`` is true unless the client says false (``GenerateRequest.Stream``);
- ``options`` -> sampling fields (:data:`OPTION_NAMES` reversed, ``num_predict`` ->
  ``max_tokens``, ``stop``); options no OpenAI runtime takes (``num_ctx``, ``num_gpu``, ...) are
  load-time settings of the deployment here and are ignored, as Ollama ignores them on a loaded model;
- ``format``: "json" -> ``json_object``, a schema -> ``json_schema``;
- answers: whole -> one object with ``done: true``; streamed -> NDJSON, one object per
  text delta, tool calls whole in one object (Ollama sends them whole), the last object
  with ``done_reason`` and the counts. Durations are nanoseconds: ``total_duration`` as the
  gateway measured it, ``prompt_eval_duration``/``eval_duration`` from the runtime's own
  ``timings`` when it reports them (llama.cpp), else from when the first and last tokens
  arrived (streams) or left out (whole answers: Go's ``omitempty`` drops zero);
  ``load_duration`` is left out (replicas are loaded before they take traffic).
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import orjson

from inferplane.protocol.errors import NotTranslatable
from inferplane.protocol.ollama import OPTION_NAMES
from inferplane.protocol.translating_stream import TranslatingStream

__all__ = [
    "OpenAIToOllamaStream",
    "chat_from_ollama",
    "created_at",
    "embed_from_ollama",
    "error_body",
    "error_from_openai",
    "generate_from_ollama",
    "openai_to_chat",
    "openai_to_embed",
    "openai_to_generate",
]

_SAMPLING = {ollama: openai for openai, ollama in OPTION_NAMES.items()}
_IMAGE_MAGIC = (("iVBORw0KGgo", "image/png"), ("/9j/", "image/jpeg"), ("R0lGOD", "image/gif"),
                ("UklGR", "image/webp"))


def created_at(now: float | None = None) -> str:
    """``created_at`` as Go's ``time.Time`` marshals it in UTC (RFC 3339, fractional seconds)."""
    t = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def error_body(message: str) -> bytes:
    """Ollama's error body: ``{"error": "<text>"}`` (``api.StatusError``; the client's ResponseError)."""
    return orjson.dumps({"error": message})


def error_from_openai(body: bytes) -> bytes:
    """An OpenAI error body (the gateway's or a runtime's) in Ollama's shape."""
    try:
        data = orjson.loads(body)
        err = data.get("error") if isinstance(data, dict) else None
        message = err.get("message") if isinstance(err, dict) else err
    except orjson.JSONDecodeError:
        message = None
    return error_body(message if isinstance(message, str) and message else body.decode("utf-8", "replace")[:500])


# -- requests ---------------------------------------------------------------------------------------


def _media_type(b64: str) -> str:
    for prefix, media in _IMAGE_MAGIC:
        if b64.startswith(prefix):
            return media
    return "image/png"


def _images(images: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
        raise NotTranslatable(f"{where}: images must be an array of base64 strings", where)
    for i, img in enumerate(images):
        try:
            base64.b64decode(img[:64] + "=" * (-len(img[:64]) % 4), validate=True)
        except ValueError as exc:
            raise NotTranslatable(f"{where}[{i}]: not base64 image data", where) from exc
    return [{"type": "image_url", "image_url": {"url": f"data:{_media_type(img)};base64,{img}"}} for img in images]


def _options(body: dict[str, Any], out: dict[str, Any]) -> None:
    opts = body.get("options")
    if opts is None:
        return
    if not isinstance(opts, dict):
        raise NotTranslatable("options must be an object", "options")
    for name, field in _SAMPLING.items():
        if opts.get(name) is not None:
            out[field] = opts[name]
    n = opts.get("num_predict")
    if n is not None and n != -1:  # -1: "until the model stops" (Ollama's default), i.e. no limit
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise NotTranslatable(f"options.num_predict must be a positive integer or -1, got {n!r}", "options")
        out["max_tokens"] = n
    stop = opts.get("stop")
    if stop:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(x, str) for x in stop):
            raise NotTranslatable("options.stop must be a string or an array of strings", "options")
        out["stop"] = stop


def _format(body: dict[str, Any], out: dict[str, Any]) -> None:
    fmt = body.get("format")
    if fmt in (None, ""):
        return
    if fmt == "json":
        out["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        out["response_format"] = {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt}}
    else:
        raise NotTranslatable(f"invalid format {fmt!r}: use \"json\" or a JSON schema object", "format")


def _common(body: dict[str, Any]) -> dict[str, Any]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise NotTranslatable("model is required", "model")
    out: dict[str, Any] = {"model": model}
    stream = body.get("stream", True)
    if stream is None:
        stream = True
    if not isinstance(stream, bool):
        raise NotTranslatable("stream must be a boolean", "stream")
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    _options(body, out)
    _format(body, out)
    if body.get("logprobs"):
        raise NotTranslatable("logprobs are not available through this gateway's Ollama API", "logprobs")
    return out


def _message(i: int, m: Any) -> dict[str, Any]:
    where = f"messages[{i}]"
    if not isinstance(m, dict) or not isinstance(m.get("role"), str):
        raise NotTranslatable(f"{where}: a message needs a role", where)
    role = m["role"].lower()
    if role not in ("system", "user", "assistant", "tool"):
        raise NotTranslatable(f"{where}: invalid role {m['role']!r}", where)
    content = m.get("content") or ""
    if not isinstance(content, str):
        raise NotTranslatable(f"{where}.content must be a string", where)
    out: dict[str, Any] = {"role": role}
    if m.get("images"):
        out["content"] = [{"type": "text", "text": content}, *_images(m["images"], f"{where}.images")]
    else:
        out["content"] = content
    calls = m.get("tool_calls")
    if calls:
        out["tool_calls"] = []
        for j, c in enumerate(calls):
            fn = c.get("function") if isinstance(c, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise NotTranslatable(f"{where}.tool_calls[{j}]: a tool call needs function.name", where)
            args = fn.get("arguments") or {}
            out["tool_calls"].append({"id": c.get("id") or f"call_{i}_{j}", "type": "function",
                                      "function": {"name": fn["name"], "arguments": orjson.dumps(args).decode()
                                                   if not isinstance(args, str) else args}})
    if role == "tool":
        if m.get("tool_name"):
            out["name"] = m["tool_name"]
        out["tool_call_id"] = m.get("tool_call_id") or None
    return out


def chat_from_ollama(body: dict[str, Any]) -> dict[str, Any]:
    """An Ollama ``/api/chat`` request as an OpenAI chat request. Raises NotTranslatable."""
    out = _common(body)
    msgs = body.get("messages")
    if msgs is None:
        msgs = []
    if not isinstance(msgs, list):
        raise NotTranslatable("messages must be an array", "messages")
    out["messages"] = [_message(i, m) for i, m in enumerate(msgs)]
    _link_tool_results(out["messages"])
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise NotTranslatable("tools must be an array", "tools")
        out["tools"] = [{"type": t.get("type") or "function", "function": t.get("function")}
                        if isinstance(t, dict) else t for t in tools]
    return out


def _link_tool_results(msgs: list[dict[str, Any]]) -> None:
    """Ollama's tool results name the tool, OpenAI's name the call: point each at the latest call
    of that tool (or the latest call at all) when the client gave no ``tool_call_id``."""
    calls: list[dict[str, Any]] = []
    for m in msgs:
        if m.get("tool_calls"):
            calls = list(m["tool_calls"])
        elif m["role"] == "tool" and calls:
            if m["tool_call_id"] is None:
                named = [c for c in calls if c["function"]["name"] == m.get("name")]
                m["tool_call_id"] = (named or calls)[-1]["id"]
        elif m["role"] == "tool" and m["tool_call_id"] is None:
            m["tool_call_id"] = m.get("name") or "call"


def generate_from_ollama(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """An Ollama ``/api/generate`` request as (route, OpenAI body): "chat", or "completions" for raw."""
    out = _common(body)
    prompt = body.get("prompt") or ""
    if not isinstance(prompt, str):
        raise NotTranslatable("prompt must be a string", "prompt")
    if body.get("context"):
        raise NotTranslatable("'context' (token ids from an earlier answer) is not supported here; "
                               "use /api/chat and send the conversation as messages", "context")
    if body.get("suffix"):
        raise NotTranslatable("'suffix' (fill-in-the-middle) is not supported here", "suffix")
    if body.get("template"):
        raise NotTranslatable("'template' overrides are not supported here; the runtime applies the "
                               "model's own template (or send raw: true with a formatted prompt)", "template")
    if body.get("raw") is True:
        if body.get("images"):
            raise NotTranslatable("images need the model's template; they cannot be sent with raw: true", "images")
        out["prompt"] = prompt
        return "completions", out
    msgs: list[dict[str, Any]] = []
    if isinstance(body.get("system"), str) and body["system"]:
        msgs.append({"role": "system", "content": body["system"]})
    user: dict[str, Any] = {"role": "user", "content": prompt}
    if body.get("images"):
        user["content"] = [{"type": "text", "text": prompt}, *_images(body["images"], "images")]
    msgs.append(user)
    out["messages"] = msgs
    return "chat", out


def embed_from_ollama(body: dict[str, Any]) -> dict[str, Any]:
    """An Ollama ``/api/embed`` request as an OpenAI ``/v1/embeddings`` request."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise NotTranslatable("model is required", "model")
    inp = body.get("input", "")
    if isinstance(inp, str):
        inputs = [inp] if inp else []
    elif isinstance(inp, list) and all(isinstance(i, str) for i in inp):
        inputs = inp
    else:
        raise NotTranslatable("invalid input type", "input")
    out: dict[str, Any] = {"model": model, "input": inputs, "encoding_format": "float"}
    dims = body.get("dimensions")
    if dims:
        out["dimensions"] = dims
    return out


def openai_to_embed(obj: dict[str, Any], model: str, total_ns: int) -> dict[str, Any]:
    """An OpenAI embeddings answer as an Ollama ``EmbedResponse``."""
    data = sorted(obj.get("data") or (), key=lambda d: d.get("index", 0))
    out: dict[str, Any] = {"model": model, "embeddings": [d.get("embedding") for d in data],
                           "total_duration": total_ns}
    prompt = int((obj.get("usage") or {}).get("prompt_tokens") or 0)
    if prompt:
        out["prompt_eval_count"] = prompt
    return out


# -- answers -----------------------------------------------------------------------------------------

_MS = 1_000_000


def _done_reason(finish: str | None) -> str:
    return "length" if finish == "length" else "stop"


def _metrics(usage: Any, timings: Any, total_ns: int) -> dict[str, int]:
    """The ``api.Metrics`` fields (nanoseconds), zero ones left out as Go's omitempty does."""
    u = usage if isinstance(usage, dict) else {}
    out = {"total_duration": total_ns, "prompt_eval_count": int(u.get("prompt_tokens") or 0),
           "eval_count": int(u.get("completion_tokens") or 0)}
    if isinstance(timings, dict):
        out["prompt_eval_duration"] = int(float(timings.get("prompt_ms") or 0) * _MS)
        out["eval_duration"] = int(float(timings.get("predicted_ms") or 0) * _MS)
    return {k: v for k, v in out.items() if v}


def _tool_calls(calls: Any) -> list[dict[str, Any]]:
    out = []
    for i, c in enumerate(calls or ()):
        fn = c.get("function") or {}
        args = fn.get("arguments")
        try:
            parsed = orjson.loads(args) if isinstance(args, str) and args else (args or {})
        except orjson.JSONDecodeError as exc:
            raise NotTranslatable(f"the model's tool call arguments are not JSON: {str(args)[:200]!r}") from exc
        out.append({"id": c.get("id") or f"call_{i}",
                    "function": {"index": i, "name": fn.get("name"), "arguments": parsed}})
    return out


def openai_to_chat(obj: dict[str, Any], model: str, total_ns: int, now: float | None = None) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` as an Ollama ``ChatResponse`` (``done: true``)."""
    choice = (obj.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    message: dict[str, Any] = {"role": "assistant", "content": msg.get("content") or ""}
    thinking = msg.get("reasoning_content") or msg.get("reasoning")
    if thinking:
        message["thinking"] = thinking
    if msg.get("tool_calls"):
        message["tool_calls"] = _tool_calls(msg["tool_calls"])
    return {"model": model, "created_at": created_at(now), "message": message, "done": True,
            "done_reason": _done_reason(choice.get("finish_reason")),
            **_metrics(obj.get("usage"), obj.get("timings"), total_ns)}


def openai_to_generate(obj: dict[str, Any], model: str, total_ns: int, now: float | None = None) -> dict[str, Any]:
    """An OpenAI chat or text completion as an Ollama ``GenerateResponse`` (``done: true``)."""
    choice = (obj.get("choices") or [{}])[0]
    text = choice.get("text")
    if text is None:
        text = (choice.get("message") or {}).get("content") or ""
    return {"model": model, "created_at": created_at(now), "response": text, "done": True,
            "done_reason": _done_reason(choice.get("finish_reason")),
            **_metrics(obj.get("usage"), obj.get("timings"), total_ns)}


def _second(sec: int) -> tuple[int, bytes]:
    """``(sec, created_at(sec)[:19])``, without datetime's strftime (~10 us)."""
    return sec, b"%04d-%02d-%02dT%02d:%02d:%02d" % time.gmtime(sec)[:6]


class OpenAIToOllamaStream(TranslatingStream):
    """OpenAI SSE chunks (chat or completions, split anywhere) -> Ollama NDJSON. One per stream.

    ``kind`` is "chat" (``message`` objects) or "generate" (``response`` strings). Text goes
    out as it arrives; tool-call fragments are gathered and sent whole in one object; the
    final ``done: true`` object waits for ``data: [DONE]`` (the usage chunk comes after the
    finish). An OpenAI error event becomes ``{"error": ...}``, which the ollama client raises; so
    does a chunk Ollama's shape cannot carry. ``finished``: the ``done: true`` object or an error
    line went out. The loop is ``TranslatingStream``'s.
    ``clock`` returns nanoseconds (``time.perf_counter_ns``); ``t0_ns`` is when the request came in.
    """

    __slots__ = ("_calls", "_clock", "_finish", "_first", "_head", "_kind", "_last", "_mid", "_model", "_second",
                 "_t0", "_tail", "_timings", "_usage")

    def __init__(self, kind: str, model: str, t0_ns: int, clock: Callable[[], int] = time.perf_counter_ns) -> None:
        super().__init__()
        self._kind = kind
        self._model = model
        self._t0 = t0_ns
        self._clock = clock
        self._calls: dict[int, dict[str, Any]] = {}
        self._finish: str | None = None
        self._usage: Any = None
        self._timings: Any = None
        self._first = 0
        self._last = 0
        self._second = _second(int(time.time()))  # made now, not on the first chunk (the one a client waits for)
        # A text line is orjson.dumps({"model", "created_at", "message": {"role", "content"} | "response",
        # "done": false}) + "\n"; its bytes around the two values that change are made once per stream.
        self._head = b'{"model":' + orjson.dumps(model) + b',"created_at":"'
        if kind == "chat":
            self._mid, self._tail = b'","message":{"role":"assistant","content":', b'},"done":false}\n'
        else:
            self._mid, self._tail = b'","response":', b',"done":false}\n'

    def _now(self) -> str:
        """``created_at`` for this moment (see ``_stamp``)."""
        return self._stamp().decode()

    def _stamp(self) -> bytes:
        """``created_at`` for this moment, as bytes; the date part formatted once a second (it is per chunk)."""
        t = time.time()
        sec = int(t)
        second = self._second
        if sec != second[0]:
            second = self._second = _second(sec)
        return b"%s.%06dZ" % (second[1], (t - sec) * 1e6)  # %d truncates the float, as int() would

    def _line(self, obj: dict[str, Any]) -> bytes:
        return orjson.dumps(obj) + b"\n"

    def _text(self, text: str) -> bytes:
        now = self._clock()
        self._first = self._first or now
        self._last = now
        return b"".join((self._head, self._stamp(), self._mid, orjson.dumps(text), self._tail))

    def _chunk(self, obj: dict[str, Any]) -> bytes:
        if "error" in obj:
            err = obj["error"]
            self._done = True
            return self._line({"error": err.get("message") if isinstance(err, dict) else str(err)})
        if obj.get("usage"):
            self._usage = obj["usage"]
        if obj.get("timings"):
            self._timings = obj["timings"]
        out = b""
        for choice in obj.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content") if "delta" in choice else choice.get("text")
            if isinstance(text, str) and text:
                out += self._text(text)
            for call in delta.get("tool_calls") or ():
                self._gather(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def _gather(self, call: dict[str, Any]) -> None:
        slot = self._calls.setdefault(call.get("index", 0), {"id": None, "function": {"name": "", "arguments": ""}})
        fn = call.get("function") or {}
        slot["id"] = slot["id"] or call.get("id")
        slot["function"]["name"] += fn.get("name") or ""
        slot["function"]["arguments"] += fn.get("arguments") or ""

    def _finale(self) -> bytes:
        self._done = True
        now = self._clock()
        out = b""
        if self._calls and self._kind == "chat":
            calls = _tool_calls([self._calls[k] for k in sorted(self._calls)])
            out += self._line({"model": self._model, "created_at": self._now(),
                               "message": {"role": "assistant", "content": "", "tool_calls": calls}, "done": False})
        metrics = _metrics(self._usage, self._timings, now - self._t0)
        if not isinstance(self._timings, dict) and self._first:
            metrics["prompt_eval_duration"] = self._first - self._t0
            metrics["eval_duration"] = max(1, self._last - self._first)
        final: dict[str, Any] = {"model": self._model, "created_at": self._now()}
        if self._kind == "chat":
            final["message"] = {"role": "assistant", "content": ""}
        else:
            final["response"] = ""
        final.update({"done": True, "done_reason": _done_reason(self._finish), **metrics})
        return out + self._line(final)

    def error(self, message: str) -> bytes:
        """End the stream with an error line (the ollama client raises it)."""
        self._done = True
        return self._line({"error": message})
