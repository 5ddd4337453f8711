"""llama.cpp server metrics (``llamacpp:*``, served with ``--metrics``) -> EndpointStats.

Names from llama.cpp ``tools/server/server-context.cpp`` (``handle_metrics``), as served by
the xllamacpp build in use here:
``prompt_tokens_total`` (prompt tokens processed, cached ones *excluded*),
``prompt_tokens_cached_total`` (prompt tokens reused from the cache),
``tokens_predicted_total``, ``requests_processing``, ``requests_deferred``;
older builds also serve ``kv_cache_usage_ratio``.
"""

from __future__ import annotations

from inferplane.runtimes.base import EndpointStats
from inferplane.runtimes.prometheus import parse_prometheus

__all__ = ["parse_llamacpp_metrics"]


def parse_llamacpp_metrics(text: str) -> EndpointStats:
    m = parse_prometheus(text)
    computed = m.get("llamacpp:prompt_tokens_total")
    cached = m.get("llamacpp:prompt_tokens_cached_total")
    prompt = None if computed is None else computed + (cached or 0.0)
    return EndpointStats(
        running=m.get("llamacpp:requests_processing"),
        waiting=m.get("llamacpp:requests_deferred"),
        kv_cache_usage=m.get("llamacpp:kv_cache_usage_ratio"),
        prefix_cache_hits=cached,
        prefix_cache_queries=prompt if cached is not None else None,
        prefix_cache_unit="tokens",
        prompt_tokens=prompt,
        generation_tokens=m.get("llamacpp:tokens_predicted_total"),
    )
