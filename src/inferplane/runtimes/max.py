"""Modular MAX: ``max serve --model-path MODEL`` (NVIDIA/AMD GPUs, and CPU - slow to compile).

Flags: ``--model-path``, ``--served-model-name``, ``--host``, ``--port``, ``--devices``
(``cpu`` or ``gpu:0,1``), ``--quantization-encoding`` (float32 | bfloat16 | q4_k | gptq...;
also the dtype), verified by the live recording (tests/fixtures/max/live/RECORDED.md);
``--max-batch-size`` (``PipelineRuntimeConfig.max_batch_size``), ``--max-length``,
``--device-memory-utilization`` and ``--enable-prefix-caching`` (``KVCacheConfig``, off by
default) are the kebab-case spellings of MAX's config fields
(max/python/max/pipelines/lib/pipeline_runtime_config.py, kv_cache_config.py).

Without GPUs granted (``Resources.gpu_ids``) the replica runs on ``--devices cpu`` with
``float32`` unless the deployment names an encoding. Readiness: the port opens after the
model worker started (first start compiles for many minutes); ``GET /health`` then
answers 200. Metrics are OpenTelemetry instruments exported on their own port
(``MAX_SERVE_METRICS_ENDPOINT_PORT``, default 8001; a second replica on the same host
fails to bind it, which MAX treats as benign). MAX speaks OpenAI: bytes pass through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from inferplane.runtimes._common import program, which_availability
from inferplane.runtimes.base import (
    Availability,
    Capabilities,
    EndpointStats,
    LaunchError,
    LaunchSpec,
    ProbeSpec,
    Resources,
    RuntimeAdapter,
)
from inferplane.runtimes.prometheus import parse_prometheus

if TYPE_CHECKING:
    from inferplane.config import DeploymentConfig

__all__ = ["MaxAdapter", "parse_max_metrics"]

DEFAULT_METRICS_PORT = 8001


def parse_max_metrics(text: str) -> EndpointStats:
    """``maxserve_*`` (OTel names ``maxserve.*`` as the Prometheus exporter spells them).

    KV usage = used / total cache blocks; prefix hits/queries = hit tokens / (hit + miss).
    """
    m = parse_prometheus(text)
    used = m.get("maxserve_cache_num_used_blocks_blocks", m.get("maxserve_cache_num_used_blocks"))
    total = m.get("maxserve_cache_num_total_blocks_blocks", m.get("maxserve_cache_num_total_blocks"))
    hits = m.get("maxserve_cache_hits_tokens_total", m.get("maxserve_cache_hits_total"))
    misses = m.get("maxserve_cache_misses_tokens_total", m.get("maxserve_cache_misses_total"))
    return EndpointStats(
        running=m.get("maxserve_num_requests_running"),
        waiting=m.get("maxserve_num_requests_queued"),
        kv_cache_usage=(used / total) if used is not None and total else None,
        prefix_cache_hits=hits,
        prefix_cache_queries=(hits + (misses or 0.0)) if hits is not None else None,
        prefix_cache_unit="tokens",
        prompt_tokens=m.get("maxserve_num_input_tokens_total"),
        generation_tokens=m.get("maxserve_num_output_tokens_total"),
    )


class MaxAdapter(RuntimeAdapter):
    name = "max"

    def capabilities(self) -> Capabilities:
        return Capabilities(
            architectures=("llama", "mistral", "qwen2", "qwen3", "gemma3", "phi3", "deepseek_v3", "granite",
                           "olmo", "exaone"),
            weight_formats=("safetensors", "gguf"),
            quantizations=("float32", "bfloat16", "q4_k", "q4_0", "q6_k", "gptq", "float8_e4m3fn"),
            hardware=("nvidia", "amd", "cpu"),
            multi_gpu=True, prefix_caching=True, speculative_decoding=True, structured_output=True,
            lora=True, embeddings=True, pd_disaggregation=True, streams_usage=True, max_choices=1,
            install_hint="pip install modular (see notes: pin the opentelemetry 1.35 family)",
        )

    def availability(self) -> Availability:
        return which_availability("max", "pip install modular", needs_gpu=False)

    def launch_spec(self, deployment: DeploymentConfig, port: int, resources: Resources) -> LaunchSpec:
        d = deployment
        if d.dtype and d.quantization and d.dtype != d.quantization:
            raise LaunchError(f"deployment {d.name!r}: MAX has one --quantization-encoding for dtype and "
                              f"quantization; set only one of dtype={d.dtype!r} / quantization={d.quantization!r}")
        cpu = not resources.gpu_ids
        if cpu and (d.tensor_parallel_size != 1 or d.gpu_memory_fraction is not None):
            raise LaunchError(f"deployment {d.name!r}: no GPUs were granted, so MAX runs on the CPU; "
                              "remove tensor_parallel_size / gpu_memory_fraction")
        if not cpu and d.tensor_parallel_size != len(resources.gpu_ids):
            raise LaunchError(f"deployment {d.name!r}: MAX shards over the GPUs in --devices; "
                              f"tensor_parallel_size={d.tensor_parallel_size} but {len(resources.gpu_ids)} granted")
        devices = "cpu" if cpu else "gpu:" + ",".join(str(i) for i in resources.gpu_ids)
        encoding = d.quantization or d.dtype or ("float32" if cpu else None)
        argv = program(d, ("max", "serve"))
        argv += [
            "--model-path", d.model,
            "--served-model-name", d.name,
            "--host", resources.host,
            "--port", str(port),
            "--devices", devices,
            "--max-batch-size", str(d.max_concurrent_sequences),
        ]
        if encoding:
            argv += ["--quantization-encoding", encoding]
        if d.context_length_tokens:
            argv += ["--max-length", str(d.context_length_tokens)]
        if d.gpu_memory_fraction is not None:
            argv += ["--device-memory-utilization", str(d.gpu_memory_fraction)]
        if d.prefix_caching:
            argv.append("--enable-prefix-caching")
        argv += d.extra_args
        # Each replica needs its own metrics port (the default 8001 would be shared, and the
        # second replica's metrics lost). MAX_SERVE_DISABLE_TELEMETRY would switch the metrics
        # server off too; OTEL_SDK_DISABLED only stops telemetry leaving the machine.
        metrics_port = int(d.env.get("MAX_SERVE_METRICS_ENDPOINT_PORT") or resources.aux_port or DEFAULT_METRICS_PORT)
        env = {"OTEL_SDK_DISABLED": "true", "MAX_SERVE_METRICS_ENDPOINT_PORT": str(metrics_port), **d.env}
        return LaunchSpec(argv=tuple(argv), env=env, probe=self.probe(), metrics_port=metrics_port)

    def probe(self) -> ProbeSpec:
        return ProbeSpec("/health")

    def parse_metrics(self, text: str) -> EndpointStats:
        return parse_max_metrics(text)
