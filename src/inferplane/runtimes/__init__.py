"""Runtime adapters: one module per runtime, all on the contract in ``runtimes.base``.

The names below are loaded on first use (PEP 562): a replica's child process
(``python -m inferplane.runtimes.embedded_main``) imports this package first, and must not
pay for every adapter (and ``importlib.metadata``) before its runtime starts - that is
time a request held during a scale from zero waits.
"""

from __future__ import annotations

import importlib
from typing import Any

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

_FROM = {name: "inferplane.runtimes.base" for name in __all__[:7]} | {
    "adapter_names": "inferplane.runtimes.registry", "get_adapter": "inferplane.runtimes.registry"}


def __getattr__(name: str) -> Any:
    module = _FROM.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
