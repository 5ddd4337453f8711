"""OpenAI chat SSE -> Anthropic's Messages event stream (the streaming half of ``protocol/anthropic.py``)."""

from __future__ import annotations

import os
from typing import Any

import orjson

from inferplane.protocol.anthropic import message_id, sse_event, stop_reason, usage
from inferplane.protocol.translating_stream import TranslatingStream

__all__ = ["OpenAIToAnthropicStream"]

# sse_event("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {"type":
# "text_delta", "text": t}}) as bytes around i and t: the event nearly every chunk of a stream becomes
_TEXT_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_TEXT_DELTA_MID = b',"delta":{"type":"text_delta","text":'
# sse_event("message_start", ...) as bytes around the id, the model and the input estimate (made
# as the stream is, so that its first chunk, the one a client waits for, only copies it)
_MESSAGE_START = (b'event: message_start\ndata: {"type":"message_start","message":{"id":%s,"type":"message",'
                  b'"role":"assistant","model":%s,"content":[],"stop_reason":null,"stop_sequence":null,'
                  b'"usage":{"input_tokens":%d,"output_tokens":0}}}\n\n')
_TEXT_BLOCK: dict[str, Any] = {"type": "text", "text": ""}
"""The content block a text block starts as (read, never changed)."""
_FIRST_TEXT_BLOCK = (sse_event("content_block_start", {"type": "content_block_start", "index": 0,
                                                      "content_block": _TEXT_BLOCK})
                     + sse_event("ping", {"type": "ping"}))
"""What opening a text block as a stream's first block sends (nearly every stream's first chunk)."""


class OpenAIToAnthropicStream(TranslatingStream):
    """OpenAI chat SSE chunks (split anywhere) -> Anthropic's event sequence. One per stream.

    Emits ``message_start`` first, then per content block (thinking, text, each tool call)
    ``content_block_start`` (a ``ping`` after the first, where Anthropic sends it) / ``content_block_delta`` (``thinking_delta``,
    ``text_delta``, ``input_json_delta``) / ``content_block_stop``, and at ``data: [DONE]``
    ``message_delta`` (``stop_reason``, ``stop_sequence``, cumulative usage) and
    ``message_stop``. An OpenAI error event becomes Anthropic's ``error`` event, which ends
    the stream (the SDK raises it); so does a chunk Anthropic's shape cannot carry. ``finished``:
    ``message_stop`` or an ``error`` event went out. The loop is ``TranslatingStream``'s.
    """

    __slots__ = ("_block", "_finish", "_index", "_kind", "_message_start", "_started", "_stop_sequences", "_tools",
                 "_usage", "id")

    def __init__(self, model: str, stop_sequences: list[str] | None = None, input_estimate: int = 0) -> None:
        super().__init__()
        self.id = message_id()
        self._stop_sequences = stop_sequences
        self._message_start = _MESSAGE_START % (orjson.dumps(self.id), orjson.dumps(model), input_estimate)
        self._started = False
        self._index = -1  # index of the open block (-1: none open yet)
        self._kind: str | None = None  # "thinking" | "text" | "tool"
        self._block = 0  # blocks started so far
        self._tools: dict[int, int] = {}  # OpenAI tool_call index -> block index
        self._finish: tuple[str, str | None] = ("end_turn", None)
        self._usage: dict[str, int] | None = None

    def _start(self) -> bytes:
        self._started = True
        return self._message_start

    def _close(self) -> bytes:
        if self._kind is None:
            return b""
        self._kind = None
        return sse_event("content_block_stop", {"type": "content_block_stop", "index": self._index})

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self._index = self._block
        self._block += 1
        self._kind = kind
        if self._index == 0 and kind == "text":  # nearly every stream's first block: its bytes made once
            return out + _FIRST_TEXT_BLOCK
        out += sse_event("content_block_start",
                         {"type": "content_block_start", "index": self._index, "content_block": block})
        if self._index == 0:  # where Anthropic's own streams send their ping
            out += sse_event("ping", {"type": "ping"})
        return out

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return sse_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def _chunk(self, obj: dict[str, Any]) -> bytes:
        if "error" in obj:
            err = obj["error"]
            message = err.get("message") if isinstance(err, dict) else str(err)
            self._done = True
            return sse_event("error", {"type": "error", "error": {"type": "api_error", "message": str(message)}})
        out = b"" if self._started else self._start()
        if obj.get("usage"):
            self._usage = usage(obj["usage"])
        for choice in obj.get("choices") or ():
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                if self._kind != "thinking":
                    out += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
                out += self._delta(self._index, {"type": "thinking_delta", "thinking": reasoning})
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self._kind != "text":
                    out += self._open("text", _TEXT_BLOCK)
                out += b"%s%d%s%s}}\n\n" % (_TEXT_DELTA, self._index, _TEXT_DELTA_MID, orjson.dumps(text))
            for call in delta.get("tool_calls") or ():
                out += self._tool_delta(call)
            if choice.get("finish_reason"):
                self._finish = stop_reason(choice["finish_reason"], choice, self._stop_sequences)
                if self._tools:
                    self._finish = ("tool_use", None)
        return out

    def _tool_delta(self, call: dict[str, Any]) -> bytes:
        n = call.get("index", 0)
        fn = call.get("function") or {}
        out = b""
        if n not in self._tools:
            out += self._open("tool", {"type": "tool_use", "id": call.get("id") or "toolu_" + os.urandom(12).hex(),
                                       "name": fn.get("name") or "", "input": {}})
            self._tools[n] = self._index
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            out += self._delta(self._tools[n], {"type": "input_json_delta", "partial_json": args})
        return out

    def _finale(self) -> bytes:
        self._done = True
        out = b"" if self._started else self._start()
        if self._block == 0:  # Anthropic answers have a content block even when nothing was generated
            out += self._open("text", _TEXT_BLOCK)
        out += self._close()
        reason, sequence = self._finish
        usage = self._usage or {"output_tokens": 0}
        out += sse_event("message_delta", {"type": "message_delta",
                                           "delta": {"stop_reason": reason, "stop_sequence": sequence},
                                           "usage": usage})
        return out + sse_event("message_stop", {"type": "message_stop"})

    def error(self, message: str) -> bytes:
        """End the stream with Anthropic's ``error`` event (the SDK raises it)."""
        self._done = True
        return sse_event("error", {"type": "error", "error": {"type": "api_error", "message": message}})
