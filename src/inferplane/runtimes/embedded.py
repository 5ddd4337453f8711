"""The embedded default runtime: llama.cpp's C++ server engine via the ``xllamacpp`` wheel.

Embeddings: a deployment with ``embeddings: true`` starts in llama.cpp's embedding mode
(``--embedding``, pooling from the file or mean; see embedded_main). Tools: see gguf_tools.

It needs no binary and no GPU: ``pip install inferplane`` brings it. Each replica is a
child process (``python -m inferplane.runtimes.embedded_main``) because llama.cpp aborts
the whole process on internal asserts; the child serves llama-server's HTTP API
(OpenAI chat/completions, /health, /metrics) on a loopback port, with continuous
batching over ``max_concurrent_sequences`` slots and the prompt cache on.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from typing import TYPE_CHECKING

from inferplane.runtimes.base import (
    Availability,
    Capabilities,
    EndpointStats,
    LaunchError,
    LaunchSpec,
    Resources,
    RuntimeAdapter,
    ToolSupport,
)
from inferplane.runtimes.gguf_tools import gguf_tool_support
from inferplane.runtimes.llamacpp_metrics import parse_llamacpp_metrics

if TYPE_CHECKING:
    from inferplane.config import DeploymentConfig

__all__ = ["DEFAULT_CONTEXT_TOKENS", "GGUF_CAPABILITIES", "EmbeddedAdapter", "default_context_tokens"]

DEFAULT_CONTEXT_TOKENS = 4096
"""Per sequence, when the deployment does not say and the model file does not either."""

KV_CACHE_MEMORY_SHARE = 0.25
"""At most this share of the memory available at start goes to the KV caches of the
default context length (all local replicas together); the rest is left to weights,
the OS and everything else on the machine."""

_MIN_DEFAULT_CONTEXT_TOKENS = 512


def default_context_tokens(*, trained_tokens: int | None, kv_bytes_per_token: int | None, sequences: int,
                           replicas: int, memory_available_bytes: int) -> tuple[int, str]:
    """Context per sequence when the deployment sets none, and the reason in words.

    The model's own trained context (GGUF ``<arch>.context_length``), lowered when the KV
    caches for ``sequences`` x ``replicas`` sequences would take more than
    :data:`KV_CACHE_MEMORY_SHARE` of the available memory. Pure.
    """
    if not trained_tokens:
        return DEFAULT_CONTEXT_TOKENS, "the model file does not say its trained context"
    if not kv_bytes_per_token or memory_available_bytes <= 0:
        return trained_tokens, "the model's trained context"
    budget = int(memory_available_bytes * KV_CACHE_MEMORY_SHARE)
    fits = budget // (kv_bytes_per_token * max(1, sequences) * max(1, replicas))
    kv_gib = trained_tokens * kv_bytes_per_token * sequences * replicas / 2**30
    if fits >= trained_tokens:
        return trained_tokens, f"the model's trained context; KV cache {kv_gib:.1f} GiB in all"
    ctx = max(_MIN_DEFAULT_CONTEXT_TOKENS, fits // 256 * 256)
    return ctx, (f"the model's trained context is {trained_tokens}, but its KV cache ({kv_gib:.1f} GiB) would take "
                 f"more than {KV_CACHE_MEMORY_SHARE:.0%} of the {memory_available_bytes / 2**30:.1f} GiB available")

GGUF_CAPABILITIES = Capabilities(
    architectures=("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3", "smollm", "*gguf"),
    weight_formats=("gguf",),
    quantizations=("f32", "f16", "bf16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "q4_1", "iq4_xs"),
    hardware=("cpu",),
    multi_gpu=False,
    prefix_caching=True,
    speculative_decoding=True,
    structured_output=True,
    lora=True,
    embeddings=True,
    pd_disaggregation=False,
    streams_usage=True,
    needs_local_model_file=True,
    content_parts=("text",),  # no multimodal projector is ever loaded: images/audio get llama.cpp's 500
    embedding_dimensions=False,
    embedding_launch=True,  # llama.cpp returns the full width whatever `dimensions` says (measured)
)


class EmbeddedAdapter(RuntimeAdapter):
    name = "embedded"

    def capabilities(self) -> Capabilities:
        return GGUF_CAPABILITIES

    def availability(self) -> Availability:
        if importlib.util.find_spec("xllamacpp") is None:
            return Availability(False, "not installed: pip install xllamacpp")
        return Availability(True, f"xllamacpp {importlib.metadata.version('xllamacpp')}")

    def launch_spec(self, deployment: DeploymentConfig, port: int, resources: Resources) -> LaunchSpec:
        if not deployment.model.endswith(".gguf"):
            raise LaunchError(
                f"deployment {deployment.name!r}: the embedded runtime serves GGUF files; "
                f"got model {deployment.model!r}"
            )
        if deployment.tensor_parallel_size != 1 or deployment.gpu_memory_fraction is not None:
            raise LaunchError(
                f"deployment {deployment.name!r}: the embedded runtime is CPU-only; "
                "remove tensor_parallel_size / gpu_memory_fraction or pick a GPU runtime"
            )
        slots = deployment.max_concurrent_sequences
        ctx = deployment.context_length_tokens or DEFAULT_CONTEXT_TOKENS
        argv = [
            sys.executable, "-m", "inferplane.runtimes.embedded_main",
            "--model", deployment.model,
            "--alias", deployment.name,
            "--host", resources.host,
            "--port", str(port),
            "--parallel", str(slots),
            "--ctx-size", str(ctx * slots),
        ]
        if resources.threads:
            argv += ["--threads", str(resources.threads)]
        if not deployment.prefix_caching:
            argv.append("--no-cache-prompt")
        if deployment.embeddings:
            argv.append("--embedding")
            if deployment.embedding_pooling:
                argv += ["--pooling", deployment.embedding_pooling]
        argv += deployment.extra_args
        env = {"OMP_WAIT_POLICY": "PASSIVE", **deployment.env}
        return LaunchSpec(argv=tuple(argv), env=env, probe=self.probe())

    def tool_support_for(self, deployment: DeploymentConfig) -> ToolSupport:
        return gguf_tool_support(deployment)

    def parse_metrics(self, text: str) -> EndpointStats:
        return parse_llamacpp_metrics(text)
