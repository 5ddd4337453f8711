"""Which load signals each runtime's metrics give the router, and what the router uses without them.

The router reads a replica's load from two places: the gateway's own count of requests it has sent
to the replica and not yet seen finish (``in_flight``, always fresh, always there), and what the
runtime's metrics say after each scrape (``EndpointStats``: running, waiting, KV-cache usage, prefix
cache hits/queries, tokens in/out). A runtime that exports fewer metrics leaves those fields unknown;
the router then falls back on ``in_flight`` against the deployment's ``max_concurrent_sequences``,
and cache-aware routing on the gateway's own prefix index instead of the runtime's hit counters.

``LOAD_SIGNALS`` is data, kept true by a test that parses each runtime's recorded metrics with its
adapter and compares the fields that come back filled.
"""

from __future__ import annotations

__all__ = ["LOAD_SIGNALS", "ROUTER_FALLBACK", "load_signals"]

ALL = ("running", "waiting", "kv_cache_usage", "prefix_cache", "tokens")

LOAD_SIGNALS: dict[str, tuple[tuple[str, ...], str]] = {
    "vllm": (ALL, ""),
    "sglang": (ALL, "needs --enable-metrics (the adapter passes it)"),
    "lmdeploy": (ALL, "prefix_cache from lmdeploy:cached_tokens_total (2026 releases)"),
    "trtllm": (ALL, "only with return_perf_metrics: true (the adapter writes that YAML when none is given)"),
    "max": (ALL, "metrics on their own port (MAX_SERVE_METRICS_ENDPOINT_PORT)"),
    "llamacpp": (("running", "waiting", "prefix_cache", "tokens"), "kv_cache_usage only in older builds"),
    "embedded": (("running", "waiting", "prefix_cache", "tokens"), "llama.cpp's server metrics"),
    "tgi": (("running", "waiting", "tokens"), "running = tgi_batch_current_size; no KV or prefix metrics"),
    "mlc": (("tokens",), "token counters only: no running, waiting, KV or prefix metrics"),
    "ollama": ((), "no metrics endpoint at all"),
    "openai": ((), "whatever the endpoint's /metrics shows, read with the adapter its metric names match"),
}
"""runtime -> (signals its metrics fill, a note)."""

ROUTER_FALLBACK = ("the gateway's own in-flight count per replica against max_concurrent_sequences; "
                   "for prefix-cache locality, the gateway's own prefix index")


def load_signals(runtime: str) -> tuple[tuple[str, ...], str]:
    """(signals, note) for ``runtime``; unknown runtimes give none."""
    return LOAD_SIGNALS.get(runtime, ((), ""))
