"""Any OpenAI-compatible server that the user runs: inferplane routes to it, never launches it.

Use it in a deployment's ``endpoints`` list for a server of a runtime inferplane has no
adapter for (or one started by hand). Readiness is ``GET /v1/models`` answering 2xx,
which every OpenAI-compatible server serves; metrics are read if the server exposes
llama.cpp- or vLLM-style names on ``/metrics``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
from inferplane.runtimes.llamacpp_metrics import parse_llamacpp_metrics
from inferplane.runtimes.prometheus import parse_prometheus

if TYPE_CHECKING:
    from inferplane.config import DeploymentConfig

__all__ = ["OpenAICompatAdapter"]


class OpenAICompatAdapter(RuntimeAdapter):
    name = "openai"

    def capabilities(self) -> Capabilities:
        return Capabilities(architectures=("*",), weight_formats=("*",), quantizations=("*",),
                            hardware=("remote",), max_choices=128)

    def availability(self) -> Availability:
        return Availability(False, "external servers only: list them under a deployment's 'endpoints'")

    def launch_spec(self, deployment: DeploymentConfig, port: int, resources: Resources) -> LaunchSpec:
        raise LaunchError(
            f"deployment {deployment.name!r}: runtime 'openai' cannot launch replicas; "
            "set replicas: 0 and list the servers under 'endpoints'"
        )

    def probe(self) -> ProbeSpec:
        return ProbeSpec("/v1/models")

    def parse_metrics(self, text: str) -> EndpointStats:
        if "llamacpp:" in text:
            return parse_llamacpp_metrics(text)
        m = parse_prometheus(text)
        return EndpointStats(
            running=m.get("vllm:num_requests_running"),
            waiting=m.get("vllm:num_requests_waiting"),
            kv_cache_usage=m.get("vllm:kv_cache_usage_perc"),
            prefix_cache_hits=m.get("vllm:prefix_cache_hits_total"),
            prefix_cache_queries=m.get("vllm:prefix_cache_queries_total"),
            prompt_tokens=m.get("vllm:prompt_tokens_total"),
            generation_tokens=m.get("vllm:generation_tokens_total"),
        )
