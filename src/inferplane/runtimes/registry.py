"""Adapters by runtime name."""

from __future__ import annotations

from collections.abc import Callable

from inferplane.runtimes.base import RuntimeAdapter
from inferplane.runtimes.embedded import EmbeddedAdapter
from inferplane.runtimes.openai_compat import OpenAICompatAdapter

__all__ = ["UnknownRuntimeError", "adapter_names", "get_adapter"]

_FACTORIES: dict[str, Callable[[], RuntimeAdapter]] = {
    EmbeddedAdapter.name: EmbeddedAdapter,
    OpenAICompatAdapter.name: OpenAICompatAdapter,
}


class UnknownRuntimeError(KeyError):
    def __str__(self) -> str:
        return f"unknown runtime {self.args[0]!r}; known: {', '.join(adapter_names())}"


def adapter_names() -> tuple[str, ...]:
    return tuple(sorted(_FACTORIES))


def get_adapter(name: str) -> RuntimeAdapter:
    try:
        return _FACTORIES[name]()
    except KeyError:
        raise UnknownRuntimeError(name) from None
