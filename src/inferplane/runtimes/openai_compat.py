"""Any OpenAI-compatible server that the user runs: inferplane routes to it, never launches it.

Use it in a deployment's ``endpoints`` list for a server of a runtime inferplane has no
adapter for (or one started by hand). Readiness is ``GET /v1/models`` answering 2xx,
which every OpenAI-compatible server serves; metrics are read if the server exposes
the names of a runtime inferplane knows on ``/metrics`` (its adapter's mapping is used).
"""

from __future__ import annotations

from collections.abc import Callable
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
from inferplane.runtimes.lmdeploy import parse_lmdeploy_metrics
from inferplane.runtimes.max import parse_max_metrics
from inferplane.runtimes.sglang import parse_sglang_metrics
from inferplane.runtimes.tgi import parse_tgi_metrics
from inferplane.runtimes.trtllm import parse_trtllm_metrics
from inferplane.runtimes.vllm import parse_vllm_metrics

if TYPE_CHECKING:
    from inferplane.config import DeploymentConfig

__all__ = ["OpenAICompatAdapter"]

_PARSERS: tuple[tuple[str, Callable[[str], EndpointStats]], ...] = (
    ("llamacpp:", parse_llamacpp_metrics),
    ("vllm:", parse_vllm_metrics),
    ("sglang:", parse_sglang_metrics),
    ("lmdeploy:", parse_lmdeploy_metrics),
    ("maxserve_", parse_max_metrics),
    ("trtllm_", parse_trtllm_metrics),
    ("tgi_", parse_tgi_metrics),
)
"""Metric-name marker -> the mapping of the runtime that uses it (first match wins)."""


class OpenAICompatAdapter(RuntimeAdapter):
    name = "openai"

    def capabilities(self) -> Capabilities:
        return Capabilities(architectures=("*",), weight_formats=("*",), quantizations=("*",),
                            hardware=("remote",), max_choices=128)

    def availability(self) -> Availability:
        return Availability(True, "routes to OpenAI-compatible servers you run: list them under a deployment's "
                                  "'endpoints' (it launches nothing)")

    def launch_spec(self, deployment: DeploymentConfig, port: int, resources: Resources) -> LaunchSpec:
        raise LaunchError(
            f"deployment {deployment.name!r}: runtime 'openai' cannot launch replicas; "
            "set replicas: 0 and list the servers under 'endpoints'"
        )

    def probe(self) -> ProbeSpec:
        return ProbeSpec("/v1/models")

    def parse_metrics(self, text: str) -> EndpointStats:
        """The runtime is unknown: recognise it by its metric names and use its adapter's mapping."""
        for marker, parse in _PARSERS:
            if marker in text:
                return parse(text)
        return EndpointStats()
