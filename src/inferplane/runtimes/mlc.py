"""MLC-LLM: ``mlc_llm serve MODEL`` (compiled MLC weights; CUDA, ROCm, Vulkan, Metal).

Flags from docs/deploy/rest.rst and ``python/mlc_llm/cli/serve.py`` (see
tests/fixtures/mlc/provenance.json): positional MODEL, ``--device``, ``--mode``, ``--host``,
``--port``, ``--overrides "k=v;..."`` with EngineConfig keys ``max_num_sequence``,
``context_window_size``, ``tensor_parallel_shards``, ``gpu_memory_utilization``,
``prefix_cache_mode`` (radix | disable). dtype and quantization are fixed when the weights
are converted/compiled (the ``q4f16_1`` in the folder name), so a deployment setting them
is refused. With one model served, MLC answers whatever ``model`` a request names
(``ServerContext.get_engine``), so no served name is needed.

Readiness: MLC has no /health route; ``GET /v1/models`` answers once the engine is up.
Metrics: /metrics is the engine's counters flattened to text (``prompt_tokens_sum``,
``completion_tokens_sum``...): no running/waiting/KV/prefix gauges. Errors are a flat
``{"object": "error", "message", "code"}`` JSON-encoded a second time (the body is a JSON string:
``create_error_response`` hands FastAPI an already-dumped string): rewritten into OpenAI's envelope.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from inferplane.runtimes._common import gpu_env, program, reject_settings, which_availability
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

__all__ = ["MlcAdapter", "parse_mlc_metrics"]


def parse_mlc_metrics(text: str) -> EndpointStats:
    m = parse_prometheus(text)
    return EndpointStats(prompt_tokens=m.get("prompt_tokens_sum"), generation_tokens=m.get("completion_tokens_sum"))


class MlcAdapter(RuntimeAdapter):
    name = "mlc"
    dialect = ErrorNormalizingDialect("mlc")

    def capabilities(self) -> Capabilities:
        return Capabilities(
            architectures=("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3", "smollm"),
            weight_formats=("mlc",),
            quantizations=("q4f16_1", "q4f32_1", "q3f16_1", "q0f16", "q0f32", "e4m3_e4m3_f16"),
            hardware=("nvidia", "amd", "apple", "intel-gpu", "vulkan"),
            multi_gpu=True, prefix_caching=True, speculative_decoding=True, structured_output=True,
            lora=False, embeddings=True, pd_disaggregation=True, streams_usage=True, max_choices=1,
            needs_gpu=True, install_hint="pip install mlc-llm-nightly-cu128 -f https://mlc.ai/wheels",
        )

    def availability(self) -> Availability:
        return which_availability("mlc_llm", "pip install mlc-llm (wheels from https://mlc.ai/wheels)",
                                  needs_gpu=True)

    def launch_spec(self, deployment: DeploymentConfig, port: int, resources: Resources) -> LaunchSpec:
        d = deployment
        reject_settings(d, self.name,
                        dtype="MLC weights fix the dtype at conversion (e.g. q0f16); pick a converted model",
                        quantization="MLC weights fix the quantization at conversion (e.g. q4f16_1)")
        overrides = [f"max_num_sequence={d.max_concurrent_sequences}"]
        if d.context_length_tokens:
            overrides.append(f"context_window_size={d.context_length_tokens}")
        if d.tensor_parallel_size != 1:
            overrides.append(f"tensor_parallel_shards={d.tensor_parallel_size}")
        if d.gpu_memory_fraction is not None:
            overrides.append(f"gpu_memory_utilization={d.gpu_memory_fraction}")
        overrides.append("prefix_cache_mode=" + ("radix" if d.prefix_caching else "disable"))
        argv = program(d, ("mlc_llm", "serve"))
        argv += [
            d.model,
            "--mode", "server",
            "--host", resources.host,
            "--port", str(port),
            "--overrides", ";".join(overrides),
            *d.extra_args,
        ]
        return LaunchSpec(argv=tuple(argv), env={**gpu_env(resources), **d.env}, probe=self.probe())

    def probe(self) -> ProbeSpec:
        return ProbeSpec("/v1/models")

    def parse_metrics(self, text: str) -> EndpointStats:
        return parse_mlc_metrics(text)
