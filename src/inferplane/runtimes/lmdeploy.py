"""LMDeploy: ``lmdeploy serve api_server MODEL`` (TurboMind or PyTorch engine; CUDA/Ascend).

Flags from ``lmdeploy/cli/serve.py`` + ``ArgumentHelper`` in ``lmdeploy/cli/utils.py`` (see
tests/fixtures/lmdeploy/provenance.json): ``--model-name``, ``--server-name``,
``--server-port``, ``--session-len``, ``--dtype``, ``--model-format``, ``--tp``,
``--cache-max-entry-count`` (fraction of *free* GPU memory for the KV cache),
``--max-batch-size``, ``--enable-prefix-caching`` (off by default). Metrics are on by default
since lmdeploy's "enable metrics by default" change (2025-11; ``--disable-metrics`` turns them
off; ``--enable-metrics`` no longer exists and would stop the launch); /metrics on the API port.

Readiness: ``GET /health`` answers 503 ``{"status": "initializing", ...}`` until the engine's
health monitor has probed it, then 200 ``{"status": "healthy", ...}``. Errors come as a flat
``ErrorResponse``: rewritten into OpenAI's envelope. Streams end with a separate ``choices: []``
usage chunk when ``stream_options.include_usage`` is set, like OpenAI's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from inferplane.runtimes._common import gpu_env, program, setting_flags, which_availability
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

__all__ = ["LmdeployAdapter", "parse_lmdeploy_metrics"]


def parse_lmdeploy_metrics(text: str) -> EndpointStats:
    """``lmdeploy:*`` from ``lmdeploy/metrics/loggers.py``.

    Prefix cache, in tokens: ``lmdeploy:cached_tokens_total`` of ``lmdeploy:prompt_tokens_total``
    (the counter exists since lmdeploy's 2026 loggers; older releases give None).
    """
    m = parse_prometheus(text)
    return EndpointStats(
        running=m.get("lmdeploy:num_requests_running"),
        waiting=m.get("lmdeploy:num_requests_waiting"),
        kv_cache_usage=m.get("lmdeploy:gpu_cache_usage_perc"),
        prefix_cache_hits=m.get("lmdeploy:cached_tokens_total"),
        prefix_cache_queries=m.get("lmdeploy:prompt_tokens_total") if "lmdeploy:cached_tokens_total" in m else None,
        prefix_cache_unit="tokens",
        prompt_tokens=m.get("lmdeploy:prompt_tokens_total"),
        generation_tokens=m.get("lmdeploy:generation_tokens_total"),
    )


class LmdeployAdapter(RuntimeAdapter):
    name = "lmdeploy"
    dialect = ErrorNormalizingDialect("lmdeploy")

    def capabilities(self) -> Capabilities:
        return Capabilities(
            architectures=("llama", "qwen2", "qwen3", "internlm2", "internlm3", "mistral", "mixtral", "deepseek",
                           "gemma", "phi3", "glm4"),
            weight_formats=("safetensors", "turbomind"),
            quantizations=("awq", "gptq", "fp8", "smooth_quant_w8a8", "kv_int8", "kv_int4"),
            hardware=("nvidia", "ascend"),
            multi_gpu=True, prefix_caching=True, speculative_decoding=True, structured_output=True,
            lora=True, embeddings=False, pd_disaggregation=True, streams_usage=True, max_choices=1,
            needs_gpu=True, install_hint="pip install lmdeploy",
        )

    def availability(self) -> Availability:
        return which_availability("lmdeploy", "pip install lmdeploy", needs_gpu=True)

    def launch_spec(self, deployment: DeploymentConfig, port: int, resources: Resources) -> LaunchSpec:
        d = deployment
        argv = program(d, ("lmdeploy", "serve", "api_server"))
        argv += [
            d.model,
            "--model-name", d.name,
            "--server-name", resources.host,
            "--server-port", str(port),
            "--max-batch-size", str(d.max_concurrent_sequences),
        ]
        argv += setting_flags(d, context_length="--session-len", dtype="--dtype", quantization="--model-format", tensor_parallel="--tp", gpu_memory_fraction="--cache-max-entry-count")
        if d.prefix_caching:
            argv.append("--enable-prefix-caching")
        argv += d.extra_args  # metrics are on by default (``--disable-metrics`` turns them off)
        return LaunchSpec(argv=tuple(argv), env={**gpu_env(resources), **d.env}, probe=self.probe())

    def probe(self) -> ProbeSpec:
        return ProbeSpec("/health")

    def parse_metrics(self, text: str) -> EndpointStats:
        return parse_lmdeploy_metrics(text)
