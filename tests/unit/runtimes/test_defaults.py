"""Defaults a newcomer gets without setting anything: threads per replica and context length."""

from __future__ import annotations

import os

import pytest

from inferplane.placement import cpu
from inferplane.runtimes.embedded import DEFAULT_CONTEXT_TOKENS, default_context_tokens

GiB = 2**30
SMOLLM2_KV = 23_040  # bytes per token: 30 layers x 3 KV heads x (64 + 64) x 2 bytes (its GGUF header)


def test_threads_are_the_cores_split_across_replicas_whatever_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getloadavg", lambda: (7.5, 7.5, 7.5), raising=False)
    assert cpu.threads_per_replica(1, cores=2) == 2
    assert cpu.threads_per_replica(2, cores=8) == 4
    assert cpu.threads_per_replica(3, cores=2) == 1
    assert cpu.threads_per_replica(2, 6, cores=2) == 6  # asked for: as asked
    assert cpu.threads_per_replica(1) == cpu.usable_cores()


def test_context_is_the_models_trained_context_when_memory_allows() -> None:
    ctx, why = default_context_tokens(trained_tokens=8192, kv_bytes_per_token=SMOLLM2_KV, sequences=4,
                                      replicas=1, memory_available_bytes=16 * GiB)
    assert ctx == 8192 and "trained context" in why


def test_context_is_lowered_to_fit_memory_and_says_why() -> None:
    ctx, why = default_context_tokens(trained_tokens=131072, kv_bytes_per_token=131072, sequences=4,
                                      replicas=2, memory_available_bytes=8 * GiB)
    assert ctx < 131072 and ctx % 256 == 0
    assert ctx * 131072 * 4 * 2 <= 2 * GiB  # a quarter of the memory, for all 8 sequences
    assert "131072" in why and "8.0 GiB available" in why


def test_without_metadata_the_documented_default_applies() -> None:
    assert default_context_tokens(trained_tokens=None, kv_bytes_per_token=None, sequences=4, replicas=1,
                                  memory_available_bytes=GiB)[0] == DEFAULT_CONTEXT_TOKENS
