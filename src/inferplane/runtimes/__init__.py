"""Runtime adapters: one module per runtime, all on the contract in ``runtimes.base``."""

from inferplane.runtimes.base import (
    Availability,
    Capabilities,
    EndpointStats,
    LaunchSpec,
    ProbeSpec,
    Resources,
    RuntimeAdapter,
)
from inferplane.runtimes.registry import adapter_names, get_adapter

__all__ = [
    "Availability",
    "Capabilities",
    "EndpointStats",
    "LaunchSpec",
    "ProbeSpec",
    "Resources",
    "RuntimeAdapter",
    "adapter_names",
    "get_adapter",
]
