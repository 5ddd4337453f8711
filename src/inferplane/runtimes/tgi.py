"""Hugging Face TGI: ``text-generation-launcher`` (NVIDIA/AMD/Intel/Gaudi; maintenance mode upstream).

Flags from ``launcher/src/main.rs`` as listed in docs/source/basic_tutorials/launcher.md
(each also an env var): ``--model-id``, ``--hostname``, ``--port``, ``--max-total-tokens``,
``--dtype``, ``--quantize``, ``--num-shard``, ``--cuda-memory-fraction``,
``--max-batch-size``. Prefix caching has no flag: env ``PREFIX_CACHING=0`` turns it off.
TGI serves one model and ignores the request's ``model``, so no served name is needed.

TGI's Messages API speaks OpenAI for chat/completions (``data:`` lines without a space,
which SSE allows); its errors are ``{"error": "<text>", "error_type": "validation"}``
with 422/424/429: rewritten into OpenAI's envelope. Readiness: the router binds after all
shards are warm; ``GET /health`` answers 200 (503 ``unhealthy``).
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

__all__ = ["TgiAdapter", "parse_tgi_metrics"]


def parse_tgi_metrics(text: str) -> EndpointStats:
    """``tgi_*``: batch size as running, queue size as waiting; token counts from histogram sums.

    TGI exports no KV-cache usage and no prefix-cache counters.
    """
    m = parse_prometheus(text)
    return EndpointStats(
        running=m.get("tgi_batch_current_size"),
        waiting=m.get("tgi_queue_size"),
        prompt_tokens=m.get("tgi_request_input_length_sum"),
        generation_tokens=m.get("tgi_request_generated_tokens_sum"),
    )


class TgiAdapter(RuntimeAdapter):
    name = "tgi"
    dialect = ErrorNormalizingDialect("tgi")

    def capabilities(self) -> Capabilities:
        return Capabilities(
            architectures=("llama", "mistral", "mixtral", "qwen2", "gemma", "gemma2", "gemma3", "phi3", "falcon",
                           "starcoder2", "deepseek_v3"),
            weight_formats=("safetensors",),
            quantizations=("awq", "gptq", "marlin", "bitsandbytes", "bitsandbytes-nf4", "eetq", "exl2", "fp8"),
            hardware=("nvidia", "amd", "intel-gpu", "gaudi"),
            multi_gpu=True, prefix_caching=True, speculative_decoding=True, structured_output=True,
            lora=True, embeddings=False, pd_disaggregation=False, streams_usage=True, max_choices=1,
            needs_gpu=True, install_hint="docker image ghcr.io/huggingface/text-generation-inference",
        )

    def availability(self) -> Availability:
        return which_availability("text-generation-launcher",
                                  "use the TGI docker image or build the launcher from source", needs_gpu=True)

    def launch_spec(self, deployment: DeploymentConfig, port: int, resources: Resources) -> LaunchSpec:
        d = deployment
        argv = program(d, ("text-generation-launcher",))
        argv += [
            "--model-id", d.model,
            "--hostname", resources.host,
            "--port", str(port),
            "--max-batch-size", str(d.max_concurrent_sequences),
        ]
        argv += setting_flags(d, context_length="--max-total-tokens", dtype="--dtype", quantization="--quantize", tensor_parallel="--num-shard", gpu_memory_fraction="--cuda-memory-fraction")
        argv += d.extra_args
        env = gpu_env(resources)
        if not d.prefix_caching:
            env["PREFIX_CACHING"] = "0"
        env.update(d.env)
        return LaunchSpec(argv=tuple(argv), env=env, probe=self.probe())

    def probe(self) -> ProbeSpec:
        return ProbeSpec("/health")

    def parse_metrics(self, text: str) -> EndpointStats:
        return parse_tgi_metrics(text)
