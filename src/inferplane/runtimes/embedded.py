"""The embedded default runtime: llama.cpp's C++ server engine via the ``xllamacpp`` wheel.

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
)
from inferplane.runtimes.llamacpp_metrics import parse_llamacpp_metrics

if TYPE_CHECKING:
    from inferplane.config import DeploymentConfig

__all__ = ["DEFAULT_CONTEXT_TOKENS", "GGUF_CAPABILITIES", "EmbeddedAdapter"]

DEFAULT_CONTEXT_TOKENS = 4096
"""Per sequence, when the deployment does not say."""

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
            "--host", "127.0.0.1",
            "--port", str(port),
            "--parallel", str(slots),
            "--ctx-size", str(ctx * slots),
        ]
        if resources.threads:
            argv += ["--threads", str(resources.threads)]
        if not deployment.prefix_caching:
            argv.append("--no-cache-prompt")
        argv += deployment.extra_args
        env = {"OMP_WAIT_POLICY": "PASSIVE", **deployment.env}
        return LaunchSpec(argv=tuple(argv), env=env, probe=self.probe())

    def parse_metrics(self, text: str) -> EndpointStats:
        return parse_llamacpp_metrics(text)
