"""Record what the official ``anthropic`` and ``ollama`` Python clients send, for tests/fixtures/surfaces/live.

Starts a capture server on 127.0.0.1 that answers each call with the smallest valid answer
(so the clients do not fail) and writes each request's method, path, the headers that say
what API it is (``anthropic-version``, ``x-api-key``, content types) and its JSON body:

    python scripts/record_surface_requests.py tests/fixtures/surfaces/live

Only the requests are recorded; the answers here are placeholders, not data.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path

_KEPT_HEADERS = ("content-type", "accept", "anthropic-version", "x-api-key", "authorization")
_MESSAGE = {"id": "msg_0", "type": "message", "role": "assistant", "model": "m", "content": [],
            "stop_reason": "end_turn", "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}
_STREAM = (b"event: message_start\ndata: " + json.dumps({"type": "message_start", "message": {
    **_MESSAGE, "stop_reason": None}}).encode() + b"\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")


class _Capture(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        n = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(n)) if n else None
        self.seen.append({"method": self.command, "path": self.path,
                          "headers": {k: self.headers[k] for k in _KEPT_HEADERS if k in self.headers},
                          "body": body})
        stream = isinstance(body, dict) and body.get("stream") is True
        if self.path.startswith("/v1/messages/count_tokens"):
            out, ctype = json.dumps({"input_tokens": 1}).encode(), "application/json"
        elif self.path.startswith("/v1/messages"):
            out, ctype = (_STREAM, "text/event-stream") if stream else (json.dumps(_MESSAGE).encode(),
                                                                        "application/json")
        elif self.path in ("/api/chat", "/api/generate"):
            key = "message" if self.path == "/api/chat" else "response"
            val = {"role": "assistant", "content": ""} if key == "message" else ""
            out = json.dumps({"model": "m", "created_at": "2026-01-01T00:00:00Z", key: val, "done": True,
                              "done_reason": "stop"}).encode() + b"\n"
            ctype = "application/x-ndjson" if stream else "application/json"
        elif self.path == "/api/embed":
            out, ctype = json.dumps({"model": "m", "embeddings": [[0.0]]}).encode(), "application/json"
        elif self.path == "/api/tags" or self.path == "/api/ps":
            out, ctype = b'{"models": []}', "application/json"
        else:
            out, ctype = b'{"modelfile": "", "model_info": {}}', "application/json"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = _answer


def _record(folder: Path) -> None:
    import anthropic
    import ollama

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    a = anthropic.Anthropic(base_url=url, api_key="sk-test-key", max_retries=0)
    tools = [{"name": "get_weather", "description": "Current weather in a city",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    calls = {
        "anthropic_messages_create.json": lambda: a.messages.create(
            model="smollm2", max_tokens=64, system=[{"type": "text", "text": "You answer briefly."}],
            messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                      {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]}],
            stop_sequences=["\n\n"], tools=tools, tool_choice={"type": "auto"}, metadata={"user_id": "u-1"},
            # SDK 2.x dropped these arguments (older SDKs and the API take them): sent as older clients do
            extra_body={"temperature": 0.2, "top_p": 0.9, "top_k": 40}),
        "anthropic_messages_tool_result.json": lambda: a.messages.create(
            model="smollm2", max_tokens=64, system="You answer briefly.", tools=tools,
            tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
            messages=[{"role": "user", "content": "Weather in Paris?"},
                      {"role": "assistant", "content": [
                          {"type": "text", "text": "Let me check."},
                          {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}]},
                      {"role": "user", "content": [
                          {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18 C, sunny"},
                          {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                       "data": "iVBORw0KGgoAAAANSUhEUg=="}},
                          {"type": "text", "text": "And this picture?"}]}]),
        "anthropic_messages_stream.json": lambda: a.messages.stream(
            model="smollm2", max_tokens=32, messages=[{"role": "user", "content": "Hi"}]).__enter__().close(),
        "anthropic_count_tokens.json": lambda: a.messages.count_tokens(
            model="smollm2", system="You answer briefly.", messages=[{"role": "user", "content": "Hi"}]),
    }
    o = ollama.Client(host=url)
    calls |= {
        "ollama_chat.json": lambda: o.chat(
            model="smollm2", messages=[{"role": "system", "content": "You answer briefly."},
                                       {"role": "user", "content": "Hi"}],
            options={"num_predict": 32, "temperature": 0, "top_k": 40, "top_p": 0.9, "seed": 7, "stop": ["\n\n"],
                     "num_ctx": 2048}, format="json", keep_alive="5m"),
        "ollama_chat_stream.json": lambda: list(o.chat(
            model="smollm2", messages=[{"role": "user", "content": "Hi"}], stream=True)),
        "ollama_chat_tools.json": lambda: o.chat(
            model="smollm2", tools=[{"type": "function", "function": {
                "name": "get_weather", "description": "Current weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
            messages=[{"role": "user", "content": "Weather in Paris?"},
                      {"role": "assistant", "content": "", "tool_calls": [
                          {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
                      {"role": "tool", "content": "18 C, sunny", "tool_name": "get_weather"}]),
        "ollama_generate.json": lambda: o.generate(
            model="smollm2", prompt="Why is the sky blue?", system="You answer briefly.",
            options={"num_predict": 16}),
        "ollama_generate_raw_stream.json": lambda: list(o.generate(
            model="smollm2", prompt="Once upon a time", raw=True, stream=True)),
        "ollama_embed.json": lambda: o.embed(model="smollm2-embed", input=["hello", "world"]),
        "ollama_list.json": o.list,
        "ollama_show.json": lambda: o.show("smollm2"),
        "ollama_ps.json": o.ps,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, call in calls.items():
        _Capture.seen.clear()
        call()
        (folder / name).write_text(json.dumps(_Capture.seen[-1], indent=2) + "\n")
    server.shutdown()
    print(f"anthropic {version('anthropic')}, ollama {version('ollama')}: {len(calls)} requests in {folder}")


if __name__ == "__main__":
    _record(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/surfaces/live"))
