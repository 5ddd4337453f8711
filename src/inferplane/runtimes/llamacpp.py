"""llama.cpp's own ``llama-server`` binary, supplied by the user (``deployment.executable``).

The same engine as the embedded runtime, for users who build llama.cpp themselves (CUDA,
Metal, Vulkan...). Flags from llama.cpp ``common/arg.cpp`` / ``tools/server/README.md``:
``-m``, ``--alias``, ``--host``, ``--port``, ``--parallel`` (slots), ``--ctx-size`` (shared by
the slots, hence context x slots), ``--threads``, ``--metrics``, ``--no-cache-prompt``, ``--jinja`` (chat templates that render
tools), ``--embeddings`` / ``--pooling`` (an ``embeddings: true`` deployment).
Readiness: ``GET /health`` answers 503 ``Loading model`` until the model is loaded, then
200. Metrics ``llamacpp:*`` (see llamacpp_metrics.py). OpenAI API: bytes pass through.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from inferplane.runtimes._common import gpu_env, program, reject_settings, which_availability
from inferplane.runtimes.base import (
    Availability,
    EndpointStats,
    LaunchError,
    LaunchSpec,
    ProbeSpec,
    Resources,
    RuntimeAdapter,
    ToolSupport,
)
from inferplane.runtimes.embedded import DEFAULT_CONTEXT_TOKENS, GGUF_CAPABILITIES
from inferplane.runtimes.gguf_tools import gguf_tool_support
from inferplane.runtimes.llamacpp_metrics import parse_llamacpp_metrics

if TYPE_CHECKING:
    from inferplane.config import DeploymentConfig
    from inferplane.runtimes.base import Capabilities

__all__ = ["LlamacppAdapter"]

_CAPABILITIES = dataclasses.replace(
    GGUF_CAPABILITIES, hardware=("cpu", "nvidia", "amd", "apple", "intel-gpu"), multi_gpu=True,
    install_hint="build llama.cpp (cmake) and set the deployment's executable to llama-server",
)


_MMPROJ_FLAGS = frozenset({"--mmproj", "-mm", "--mmproj-url", "-mmu", "-hf", "--hf-repo"})


class LlamacppAdapter(RuntimeAdapter):
    name = "llamacpp"

    def capabilities(self) -> Capabilities:
        return _CAPABILITIES

    def availability(self) -> Availability:
        return which_availability(
            "llama-server", "build llama.cpp and put llama-server on PATH or set the deployment's executable",
            needs_gpu=False)

    def launch_spec(self, deployment: DeploymentConfig, port: int, resources: Resources) -> LaunchSpec:
        d = deployment
        if not d.model.endswith(".gguf"):
            raise LaunchError(f"deployment {d.name!r}: llama-server serves GGUF files; got model {d.model!r}")
        reject_settings(d, self.name,
                        dtype="the GGUF file fixes the weight types; pick another file",
                        quantization="the GGUF file fixes the quantization; pick another file",
                        tensor_parallel_size="llama.cpp splits layers across GPUs itself; "
                                             "pass --split-mode/--tensor-split in extra_args",
                        gpu_memory_fraction="offload layers with extra_args: [--n-gpu-layers, N]")
        slots = d.max_concurrent_sequences
        ctx = d.context_length_tokens or DEFAULT_CONTEXT_TOKENS
        argv = program(d, ("llama-server",))
        argv += [
            "-m", d.model,
            "--alias", d.name,
            "--host", resources.host,
            "--port", str(port),
            "--parallel", str(slots),
            "--ctx-size", str(ctx * slots),
            "--metrics",
        ]
        if resources.threads:
            argv += ["--threads", str(resources.threads)]
        if not d.prefix_caching:
            argv.append("--no-cache-prompt")
        if d.embeddings:
            argv.append("--embeddings")
            if d.embedding_pooling:
                argv += ["--pooling", d.embedding_pooling]
        else:
            argv.append("--jinja")  # tools are rendered by the model's Jinja template (see gguf_tools)
        argv += d.extra_args
        return LaunchSpec(argv=tuple(argv), env={**gpu_env(resources), **d.env}, probe=self.probe())

    def content_parts_for(self, deployment: DeploymentConfig) -> tuple[str, ...] | None:
        # a multimodal projector given on the command line lets llama-server take images/audio
        if any(a in _MMPROJ_FLAGS for a in deployment.extra_args) or deployment.endpoints:
            return None
        return _CAPABILITIES.content_parts

    def tool_support_for(self, deployment: DeploymentConfig) -> ToolSupport:
        return gguf_tool_support(deployment)

    def probe(self) -> ProbeSpec:
        return ProbeSpec("/health")

    def parse_metrics(self, text: str) -> EndpointStats:
        return parse_llamacpp_metrics(text)
