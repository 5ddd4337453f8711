"""Ollama: ``ollama serve`` with the deployment's model, spoken to through its native API.

Ollama is configured by environment (``envconfig/config.go``), not flags:
``OLLAMA_HOST=127.0.0.1:PORT``, ``OLLAMA_NUM_PARALLEL`` (parallel requests per model),
``OLLAMA_CONTEXT_LENGTH``, ``OLLAMA_KEEP_ALIVE`` (kept at -1: a replica holds its one model
loaded for good), ``OLLAMA_MAX_LOADED_MODELS=1``.

The model: ``deployment.model`` is an Ollama tag (``smollm2:135m``) that must already be in
the Ollama store (``ollama pull TAG``, or ``ollama create TAG -f Modelfile`` with ``FROM
./file.gguf``; ``OLLAMA_MODELS`` in the deployment's env points at another store).
inferplane does not pull: a download is the user's decision and can be gigabytes. Clients
use the deployment's name; the dialect sends the tag.

Readiness: ``GET /`` answers "Ollama is running" before any model is loaded, so the probe
is a tiny real request - ``POST /api/generate`` with an empty prompt, which loads the model
and answers 200 once it is in memory (404 while the tag is missing from the store).
Metrics: Ollama has no Prometheus endpoint; per-request counts come in the answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from inferplane.runtimes._common import gpu_env, program, reject_settings, which_availability
from inferplane.runtimes.base import (
    Availability,
    Capabilities,
    Dialect,
    EndpointStats,
    LaunchSpec,
    ProbeSpec,
    Resources,
    RuntimeAdapter,
)
from inferplane.runtimes.ollama_dialect import OllamaDialect

if TYPE_CHECKING:
    from inferplane.config import DeploymentConfig

__all__ = ["OllamaAdapter"]


class OllamaAdapter(RuntimeAdapter):
    name = "ollama"
    dialect = OllamaDialect()

    def capabilities(self) -> Capabilities:
        return Capabilities(
            architectures=("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3", "smollm",
                           "*gguf"),
            weight_formats=("gguf", "ollama"),
            quantizations=("f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0"),
            hardware=("cpu", "nvidia", "amd", "apple"),
            multi_gpu=True, prefix_caching=True, speculative_decoding=False, structured_output=True,
            lora=True, embeddings=True, pd_disaggregation=False, streams_usage=True, max_choices=1,
            api="ollama", install_hint="curl -fsSL https://ollama.com/install.sh | sh",
        )

    def availability(self) -> Availability:
        return which_availability("ollama", "install Ollama from https://ollama.com/download", needs_gpu=False)

    def dialect_for(self, deployment: DeploymentConfig) -> Dialect:
        return OllamaDialect(deployment.model)

    def launch_spec(self, deployment: DeploymentConfig, port: int, resources: Resources) -> LaunchSpec:
        d = deployment
        reject_settings(d, self.name,
                        dtype="the model's GGUF fixes the weight types; pick another tag",
                        quantization="pick a tag with that quantization (or `ollama create --quantize`)",
                        tensor_parallel_size="Ollama splits layers across the visible GPUs by itself",
                        gpu_memory_fraction="Ollama sizes GPU use itself (OLLAMA_GPU_OVERHEAD in env reserves bytes)",
                        prefix_caching_off="Ollama's prompt cache has no switch")
        env = {
            "OLLAMA_HOST": f"{resources.host}:{port}",
            "OLLAMA_NUM_PARALLEL": str(d.max_concurrent_sequences),
            "OLLAMA_KEEP_ALIVE": "-1",
            "OLLAMA_MAX_LOADED_MODELS": "1",
            **gpu_env(resources),
        }
        if d.context_length_tokens:
            env["OLLAMA_CONTEXT_LENGTH"] = str(d.context_length_tokens)
        env.update(d.env)
        argv = [*program(d, ("ollama",)), "serve", *d.extra_args]
        probe = ProbeSpec("/api/generate", "POST", orjson.dumps({"model": d.model, "prompt": "", "stream": False}))
        return LaunchSpec(argv=tuple(argv), env=env, probe=probe)

    def probe(self) -> ProbeSpec:
        return ProbeSpec("/")

    def parse_metrics(self, text: str) -> EndpointStats:
        return EndpointStats()
