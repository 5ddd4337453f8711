"""Normalized runtime metrics: one shape for what every runtime reports about itself."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EndpointStats"]


@dataclass(frozen=True, slots=True)
class EndpointStats:
    """One endpoint's state, normalized across runtimes. None = the runtime does not say."""

    running: float | None = None
    waiting: float | None = None
    kv_cache_usage: float | None = None
    """0..1"""
    prefix_cache_hits: float | None = None
    """Counter; tokens (or blocks: see ``prefix_cache_unit``)."""
    prefix_cache_queries: float | None = None
    prefix_cache_unit: str = "tokens"
    prompt_tokens: float | None = None
    """Counter of prompt tokens, cached ones included."""
    generation_tokens: float | None = None
    kv_cache_tokens: float | None = None
    """KV-cache capacity in tokens (what the runtime can hold at once), where its metrics say."""
