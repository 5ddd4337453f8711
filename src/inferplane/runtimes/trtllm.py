"""TensorRT-LLM: ``trtllm-serve MODEL`` (PyTorch backend by default; NVIDIA GPUs only).

Flags from ``tensorrt_llm/commands/serve.py`` (click options, underscores): ``--host``
(default localhost), ``--port``, ``--backend``, ``--max_batch_size``, ``--max_seq_len``,
``--tp_size``, ``--kv_cache_free_gpu_memory_fraction`` (fraction of the memory left after
the weights), ``--extra_llm_api_options``/``--config`` (a YAML of LLM-API settings).
There is no CLI flag for dtype, quantization or turning KV block reuse (prefix caching)
off, and no served-name flag in the release read: the API answers for any ``model`` and
reports the model directory's name. Those settings live in the YAML; a deployment that
sets them without one is refused with a LaunchError that says so.

Metrics: Prometheus text is at ``/prometheus/metrics`` and only when the LLM-API options set
``return_perf_metrics: true`` (``OpenAIServer.register_routes``; ``/metrics`` is JSON iteration
stats). Without it the router would have no load signal, so a deployment that names no YAML gets
one written for it (``PERF_METRICS_YAML``, passed as ``--extra_llm_api_options``); a user's own YAML
is passed as given and must set it itself. Readiness:
``GET /health`` (200 once the server is up; older releases answered 503 "LLM is unavailable" when
the executor died); the port opens only after the model is loaded. Errors are a flat
``ErrorResponse`` (request validation errors too): rewritten to OpenAI's.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import TYPE_CHECKING

from inferplane.runtimes._common import (
    gpu_env,
    program,
    reject_settings,
    setting_flags,
    which_availability,
)
from inferplane.runtimes.base import (
    Availability,
    Capabilities,
    EndpointStats,
    LaunchSpec,
    ProbeSpec,
    Resources,
    RuntimeAdapter,
)
from inferplane.runtimes.openai_errors import ErrorNormalizingDialect
from inferplane.runtimes.prometheus import parse_prometheus

if TYPE_CHECKING:
    from inferplane.config import DeploymentConfig

__all__ = ["TrtllmAdapter", "parse_trtllm_metrics"]

PERF_METRICS_YAML = "return_perf_metrics: true\n"
"""The LLM-API options written for a deployment that gives none: turns on /prometheus/metrics."""

_YAML_HINT = ("put it in an LLM-API options YAML and pass extra_args: [--extra_llm_api_options, FILE] "
              "(or serve a pre-quantized checkpoint)")


def parse_trtllm_metrics(text: str) -> EndpointStats:
    """``trtllm_*`` from ``tensorrt_llm/metrics/collector.py``.

    Prefix hits/queries: token counters where the release has them
    (``trtllm_prompt_cached_tokens_total`` / ``trtllm_prompt_tokens_total``), else KV
    block counters (reused / reused + missed blocks).
    """
    m = parse_prometheus(text)
    prompt = m.get("trtllm_prompt_tokens_total")
    cached = m.get("trtllm_prompt_cached_tokens_total")
    hits, queries, unit = None, None, "tokens"
    if cached is not None:
        hits, queries = cached, prompt
    else:
        reused = m.get("trtllm_kv_cache_reused_blocks_total")
        missed = m.get("trtllm_kv_cache_missed_blocks_total")
        if reused is not None:
            hits, queries, unit = reused, reused + (missed or 0.0), "blocks"
    return EndpointStats(
        running=m.get("trtllm_num_requests_running"),
        waiting=m.get("trtllm_num_requests_waiting"),
        kv_cache_usage=m.get("trtllm_kv_cache_utilization"),
        prefix_cache_hits=hits,
        prefix_cache_queries=queries,
        prefix_cache_unit=unit,
        prompt_tokens=prompt,
        generation_tokens=m.get("trtllm_generation_tokens_total"),
    )


def _perf_metrics_yaml_path() -> str:
    """A path that depends only on the text, so every replica shares one file and specs stay equal."""
    digest = hashlib.sha256(PERF_METRICS_YAML.encode()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"inferplane-trtllm-perf-metrics-{digest}.yaml")


class TrtllmAdapter(RuntimeAdapter):
    name = "trtllm"
    dialect = ErrorNormalizingDialect("trtllm")

    def capabilities(self) -> Capabilities:
        return Capabilities(
            architectures=("llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma3", "phi3", "deepseek_v3",
                           "gpt_oss", "nemotron"),
            weight_formats=("safetensors", "trt-engine", "modelopt"),
            quantizations=("fp8", "nvfp4", "int4_awq", "w4a8_awq", "int8_sq", "fp8_kv"),
            hardware=("nvidia",),
            multi_gpu=True, prefix_caching=True, speculative_decoding=True, structured_output=True,
            lora=True, embeddings=False, pd_disaggregation=True, streams_usage=True, max_choices=8,
            needs_gpu=True, install_hint="pip install tensorrt_llm (NVIDIA PyPI index)",
        )

    def availability(self) -> Availability:
        return which_availability("trtllm-serve", "pip install tensorrt_llm", needs_gpu=True)

    def launch_spec(self, deployment: DeploymentConfig, port: int, resources: Resources) -> LaunchSpec:
        d = deployment
        has_yaml = any(a in ("--extra_llm_api_options", "--config") for a in d.extra_args)
        if not has_yaml:
            reject_settings(d, self.name, dtype=_YAML_HINT, quantization=_YAML_HINT,
                            prefix_caching_off="set kv_cache_config: {enable_block_reuse: false} in " + _YAML_HINT)
        argv = program(d, ("trtllm-serve",))
        argv += [
            d.model,
            "--host", resources.host,
            "--port", str(port),
            "--backend", "pytorch",
            "--max_batch_size", str(d.max_concurrent_sequences),
        ]
        argv += setting_flags(d, context_length="--max_seq_len", tensor_parallel="--tp_size", gpu_memory_fraction="--kv_cache_free_gpu_memory_fraction")
        files: tuple[tuple[str, str], ...] = ()
        if not has_yaml:
            path = _perf_metrics_yaml_path()
            argv += ["--extra_llm_api_options", path]
            files = ((path, PERF_METRICS_YAML),)
        argv += d.extra_args
        return LaunchSpec(argv=tuple(argv), env={**gpu_env(resources), **d.env}, probe=self.probe(),
                          metrics_path="/prometheus/metrics", files=files)

    def probe(self) -> ProbeSpec:
        return ProbeSpec("/health")

    def parse_metrics(self, text: str) -> EndpointStats:
        return parse_trtllm_metrics(text)
