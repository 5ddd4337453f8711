"""One small request before a run: fail fast with the server's own words, and time it for an estimate.

A dead URL, an unknown model or a missing API key would otherwise show up as a whole run of
failed requests (a table of dashes and ``inf``). :func:`preflight` sends one request of the
run's kind with ``max_tokens=16`` and reports either the problem in one line or how fast that
request was, which :func:`estimate_s` turns into an expected duration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

__all__ = ["Preflight", "estimate_s", "preflight"]

PROBE_TOKENS = 16
PROBE_TEXT = "Say hello."
PROBE_TEXT_TOKENS = 3
"""``estimate_tokens(PROBE_TEXT)``, and what BPE tokenizers make of it ("Say", " hello", ".")."""


@dataclass(frozen=True, slots=True)
class Preflight:
    problem: str | None = None
    """One line: why a run cannot work (None: the request succeeded)."""
    seconds: float = 0.0
    completion_tokens: int = 0
    prompt_tokens: int = 0
    """What the server counted for the probe's prompt (0: it did not say)."""

    @property
    def template_tokens(self) -> int:
        """Prompt tokens the server adds around a prompt's own (chat template, default system
        prompt): its count for the probe minus the probe text's estimate; 0 when unknown."""
        return max(0, self.prompt_tokens - PROBE_TEXT_TOKENS) if self.prompt_tokens else 0


def _server_message(body: bytes) -> str:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:300].decode("utf-8", "replace").strip() or "(empty body)"
    if isinstance(doc, dict):
        err = doc.get("error", doc)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if doc.get("detail"):
            return str(doc["detail"])
    return body[:300].decode("utf-8", "replace")


async def preflight(base_url: str, model: str, *, api: str, api_key: str | None, timeout_s: float) -> Preflight:
    """Send one non-streamed request to ``base_url`` for ``model``; never raises for I/O trouble."""
    base = base_url.rstrip("/").removesuffix("/v1")
    body: dict[str, Any]
    if api == "chat":
        url, body = base + "/v1/chat/completions", {"messages": [{"role": "user", "content": PROBE_TEXT}]}
    else:
        url, body = base + "/v1/completions", {"prompt": "Hello,"}
    payload = orjson.dumps({"model": model, **body, "max_tokens": PROBE_TOKENS, "stream": False})
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    t0 = time.perf_counter()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http, \
                http.post(url, data=payload, headers=headers) as resp:
            data = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Preflight(f"cannot reach {base}: {exc or type(exc).__name__}")
    seconds = time.perf_counter() - t0
    if status >= 400:
        return Preflight(f"{url} answered {status}: {_server_message(data)}")
    tokens = prompt = 0
    try:
        usage = orjson.loads(data).get("usage") or {}
        tokens = int(usage.get("completion_tokens") or 0)
        prompt = int(usage.get("prompt_tokens") or 0) if api == "chat" else 0
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        pass
    return Preflight(None, seconds, tokens, prompt)


def estimate_s(probe: Preflight, *, requests: int, mean_output_tokens: float, parallel: float) -> float | None:
    """Expected run time from the probe's speed: ``requests / parallel`` rounds of one request each.

    Rough on purpose (it ignores batching gains and queueing); None when the probe says too little.
    """
    if probe.problem is not None or probe.completion_tokens < 2 or probe.seconds <= 0:
        return None
    per_token = probe.seconds / probe.completion_tokens
    return requests / max(parallel, 1.0) * per_token * max(mean_output_tokens, 1.0)
