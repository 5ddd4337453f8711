"""The HTTP side of one request: build the body, send it, read the (SSE) response, make a record.

Hot path: bodies are pre-serialized where possible, the response is read with
``iter_any()`` (whatever bytes arrived, one timestamp per read), events are split by
``SSEDecoder`` and parsed with orjson. Nothing here sleeps or blocks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import aiohttp
import orjson

from inferplane.bench.records import RequestRecord
from inferplane.bench.tokens import estimate_tokens
from inferplane.bench.workloads import BenchRequest, Message
from inferplane.protocol.sse import DONE, SSEDecoder

__all__ = [
    "ClientConfig",
    "StreamParser",
    "build_body",
    "make_record",
    "request_body",
    "send_request",
]

_now = time.monotonic_ns
_JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """How requests are sent. ``api`` is ``"chat"`` (/v1/chat/completions) or ``"completions"``."""

    base_url: str
    model: str
    api: str = "chat"
    stream: bool = True
    ignore_eos: bool = False
    temperature: float | None = 0.0
    request_timeout_s: float = 600.0
    api_key: str | None = None
    extra_body: dict[str, object] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Full endpoint URL."""
        base = self.base_url.rstrip("/")
        if not base.endswith("/v1"):
            base += "/v1"
        return base + ("/chat/completions" if self.api == "chat" else "/completions")

    def headers(self) -> dict[str, str]:
        """Request headers (content type, optional bearer key)."""
        if self.api_key:
            return {**_JSON_HEADERS, "Authorization": f"Bearer {self.api_key}"}
        return _JSON_HEADERS


def build_body(cfg: ClientConfig, messages: tuple[Message, ...], max_tokens: int) -> bytes:
    """Serialized request body; asks for usage in the stream so OSL comes from the server."""
    body: dict[str, object] = {"model": cfg.model, "max_tokens": max_tokens, "stream": cfg.stream}
    if cfg.api == "chat":
        body["messages"] = [{"role": r, "content": c} for r, c in messages]
    else:
        body["prompt"] = "\n\n".join(c for _, c in messages)
    if cfg.stream:
        body["stream_options"] = {"include_usage": True}
    if cfg.temperature is not None:
        body["temperature"] = cfg.temperature
    if cfg.ignore_eos:
        body["ignore_eos"] = True
    body.update(cfg.extra_body)
    return orjson.dumps(body)


def request_body(cfg: ClientConfig, req: BenchRequest) -> bytes:
    """Body of a plan request."""
    return build_body(cfg, req.messages, req.max_tokens)


class StreamParser:
    """Accumulates one response's events (the record itself is frozen).

    ``event(obj, now, chat)`` takes one decoded SSE payload (or a whole non-streamed body)
    and its arrival time. Only chunks with non-empty text, reasoning or tool-call deltas are
    content chunks; role-only, empty and usage-only chunks only update ``usage``.
    """

    __slots__ = ("chunks", "error", "first", "first_output", "last", "reasoning", "text", "usage")

    def __init__(self) -> None:
        self.chunks: list[int] = []
        self.text: list[str] = []
        self.first: int | None = None
        self.first_output: int | None = None
        self.last: int | None = None
        self.reasoning = 0
        self.usage: dict[str, object] | None = None
        self.error: str | None = None

    def event(self, obj: dict[str, object], now: int, chat: bool) -> None:
        """Account for one payload that arrived at ``now`` (monotonic ns)."""
        if "error" in obj:
            err = obj["error"]
            self.error = str(err.get("message", err)) if isinstance(err, dict) else str(err)
            return
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        choices = obj.get("choices")
        if not choices or not isinstance(choices, list):
            return
        choice = choices[0]
        if chat:
            delta = choice.get("delta") or choice.get("message") or {}
            content = delta.get("content")
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            tools = delta.get("tool_calls")
        else:
            content, reasoning, tools = choice.get("text"), None, None
        if not (content or reasoning or tools):
            return
        if self.first is None:
            self.first = now
        if (content or tools) and self.first_output is None:
            self.first_output = now
        if reasoning:
            self.reasoning += 1
            self.text.append(str(reasoning))
        if content:
            self.text.append(str(content))
        if tools:
            self.text.append(orjson.dumps(tools).decode())
        self.chunks.append(now)
        self.last = now


async def _post_once_more_if_stale(
    session: aiohttp.ClientSession, cfg: ClientConfig, body: bytes
) -> aiohttp.ClientResponse:
    try:
        return await session.post(cfg.url, data=body, headers=cfg.headers())
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        if isinstance(exc, aiohttp.ClientConnectorError):
            raise
        return await session.post(cfg.url, data=body, headers=cfg.headers())


async def send_request(
    session: aiohttp.ClientSession,
    cfg: ClientConfig,
    body: bytes,
    *,
    index: int,
    t_sched_ns: int,
    isl_estimate: int = 0,
    worker: int = 0,
    session_id: int | None = None,
    turn: int | None = None,
) -> tuple[RequestRecord, str]:
    """Send one request; never raises for request failures (they become ``ok=False`` records).

    Returns the record and the output text (needed for multi-turn history; not logged).

    A request that fails on a reused keep-alive connection before any response byte
    (llama.cpp's server drops kept-alive connections after streamed responses) is resent
    once on a fresh connection, as the OpenAI SDK would; its latency still counts from the
    first send.
    """
    p = StreamParser()
    status: int | None = None
    error_class: str | None = None
    chat = cfg.api == "chat"
    t_send = _now()
    try:
        resp_cm = await _post_once_more_if_stale(session, cfg, body)
        async with resp_cm as resp:
            status = resp.status
            if status != 200:
                raw = await resp.read()
                error_class = f"http_{status}"
                p.error = raw[:300].decode("utf-8", "replace")
            elif cfg.stream:
                dec = SSEDecoder()
                async for data in resp.content.iter_any():
                    now = _now()
                    for payload in dec.feed(data):
                        if payload != DONE:
                            p.event(orjson.loads(payload), now, chat)
                now = _now()
                for payload in dec.flush():
                    if payload != DONE:
                        p.event(orjson.loads(payload), now, chat)
            else:
                raw = await resp.read()
                p.event(orjson.loads(raw), _now(), chat)
    except TimeoutError as exc:
        error_class, p.error = "timeout", repr(exc)
    except aiohttp.ClientConnectionError as exc:
        error_class, p.error = "connection", repr(exc)
    except aiohttp.ClientError as exc:
        error_class, p.error = "http_client", repr(exc)
    except orjson.JSONDecodeError as exc:
        error_class, p.error = "bad_json", repr(exc)
    t_close = _now()
    if p.error is not None and error_class is None:
        error_class = "stream_error"
    text = "".join(p.text)
    record = make_record(
        p, text, t_sched=t_sched_ns, t_send=t_send, t_close=t_close, status=status, error_class=error_class,
        index=index, isl_estimate=isl_estimate, stream=cfg.stream, worker=worker, session_id=session_id, turn=turn,
    )  # fmt: skip
    return record, text


def make_record(
    p: StreamParser,
    text: str,
    *,
    t_sched: int,
    t_send: int,
    t_close: int,
    status: int | None = 200,
    error_class: str | None = None,
    index: int = 0,
    isl_estimate: int = 0,
    stream: bool = True,
    worker: int = 0,
    session_id: int | None = None,
    turn: int | None = None,
) -> RequestRecord:
    """Freeze a parsed response into a record; OSL from usage, else the client estimate of ``text``."""
    usage = p.usage or {}
    completion = usage.get("completion_tokens")
    prompt = usage.get("prompt_tokens")
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    osl_client = estimate_tokens(text)
    ok = error_class is None
    if isinstance(completion, int):
        osl, osl_source = completion, "usage"
    elif ok:
        osl, osl_source = osl_client, "estimate"
    else:
        osl, osl_source = None, "none"
    return RequestRecord(
        index=index,
        ok=ok,
        stream=stream,
        t_sched_ns=t_sched,
        t_send_ns=t_send,
        t_close_ns=t_close,
        t_first_ns=p.first,
        t_first_output_ns=p.first_output,
        t_last_ns=p.last,
        chunk_times_ns=tuple(p.chunks),
        osl=osl,
        osl_source=osl_source,  # type: ignore[arg-type]
        osl_client=osl_client,
        isl=prompt if isinstance(prompt, int) else isl_estimate,
        isl_source="usage" if isinstance(prompt, int) else "estimate",
        isl_client=isl_estimate,
        cached_tokens=cached if isinstance(cached, int) else None,
        reasoning_chunks=p.reasoning,
        output_chars=len(text),
        http_status=status,
        error_class=error_class,
        error_message=p.error[:300] if p.error else None,
        session=session_id,
        turn=turn,
        worker=worker,
    )
