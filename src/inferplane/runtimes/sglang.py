"""SGLang: ``python -m sglang.launch_server`` (CUDA/ROCm; not runnable on this CPU machine).

Flags from ``python/sglang/srt/server_args.py`` and the server-arguments docs (see
tests/fixtures/sglang/provenance.json): ``--model-path``, ``--served-model-name``,
``--context-length``, ``--dtype``, ``--quantization``, ``--tp-size``,
``--mem-fraction-static``, ``--max-running-requests``, ``--disable-radix-cache`` (the
radix prefix cache is on by default), ``--enable-metrics`` (off by default; needed for
/metrics) and ``--enable-cache-report`` (usage.prompt_tokens_details.cached_tokens).

Readiness: ``GET /health`` answers 503 until the warm-up request finished, then 200.
Errors come as a flat ``{"object": "error", ...}`` body: rewritten into OpenAI's
envelope (successful answers and streams pass through unchanged).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from inferplane.runtimes._common import gpu_env, module_availability, program, setting_flags
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

__all__ = ["SglangAdapter", "parse_sglang_metrics"]


_MODULE = "sglang.launch_server"


def parse_sglang_metrics(text: str) -> EndpointStats:
    """Scheduler gauges (per tp/pp rank, summed) and tokenizer-side token counters.

    SGLang has no prefix hit/query counters: hits = ``cached_tokens_total`` (prompt
    tokens served from the radix cache), queries = ``prompt_tokens_total``.
    """
    m = parse_prometheus(text)
    prompt = m.get("sglang:prompt_tokens_total")
    cached = m.get("sglang:cached_tokens_total")
    return EndpointStats(
        running=m.get("sglang:num_running_reqs"),
        waiting=m.get("sglang:num_queue_reqs"),
        kv_cache_usage=m.get("sglang:token_usage"),
        prefix_cache_hits=cached,
        prefix_cache_queries=prompt if cached is not None else None,
        prefix_cache_unit="tokens",
        prompt_tokens=prompt,
        generation_tokens=m.get("sglang:generation_tokens_total"),
    )


class SglangAdapter(RuntimeAdapter):
    name = "sglang"
    dialect = ErrorNormalizingDialect("sglang")

    def capabilities(self) -> Capabilities:
        return Capabilities(
            architectures=("*",),
            weight_formats=("safetensors", "pt", "gguf"),
            quantizations=("fp8", "awq", "gptq", "bitsandbytes", "compressed-tensors", "gguf", "w8a8_int8",
                           "modelopt_fp4"),
            hardware=("nvidia", "amd", "intel-gpu", "ascend", "tpu"),
            multi_gpu=True, prefix_caching=True, speculative_decoding=True, structured_output=True,
            lora=True, embeddings=True, pd_disaggregation=True, streams_usage=True, max_choices=128,
            needs_gpu=True, install_hint='pip install "sglang[all]"',
        )

    def availability(self) -> Availability:
        return module_availability("sglang", 'pip install "sglang[all]"', needs_gpu=True)

    def launch_spec(self, deployment: DeploymentConfig, port: int, resources: Resources) -> LaunchSpec:
        d = deployment
        argv = program(d, (sys.executable, "-m", _MODULE), module=_MODULE)
        argv += [
            "--model-path", d.model,
            "--served-model-name", d.name,
            "--host", resources.host,
            "--port", str(port),
            "--max-running-requests", str(d.max_concurrent_sequences),
        ]
        argv += setting_flags(d, context_length="--context-length", dtype="--dtype", quantization="--quantization", tensor_parallel="--tp-size", gpu_memory_fraction="--mem-fraction-static")
        if not d.prefix_caching:
            argv.append("--disable-radix-cache")
        argv += ["--enable-metrics", "--enable-cache-report", *d.extra_args]
        return LaunchSpec(argv=tuple(argv), env={**gpu_env(resources), **d.env}, probe=self.probe())

    def probe(self) -> ProbeSpec:
        return ProbeSpec("/health")

    def parse_metrics(self, text: str) -> EndpointStats:
        return parse_sglang_metrics(text)
