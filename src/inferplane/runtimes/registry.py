"""Adapters by runtime name."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from inferplane.errors import InferplaneError
from inferplane.runtimes.base import RuntimeAdapter
from inferplane.runtimes.embedded import EmbeddedAdapter
from inferplane.runtimes.llamacpp import LlamacppAdapter
from inferplane.runtimes.lmdeploy import LmdeployAdapter
from inferplane.runtimes.max import MaxAdapter
from inferplane.runtimes.mlc import MlcAdapter
from inferplane.runtimes.ollama import OllamaAdapter
from inferplane.runtimes.openai_compat import OpenAICompatAdapter
from inferplane.runtimes.sglang import SglangAdapter
from inferplane.runtimes.tgi import TgiAdapter
from inferplane.runtimes.trtllm import TrtllmAdapter
from inferplane.runtimes.vllm import VllmAdapter

__all__ = ["UnknownRuntimeError", "adapter_names", "get_adapter"]

_FACTORIES: dict[str, Callable[[], RuntimeAdapter]] = {
    a.name: a
    for a in (EmbeddedAdapter, OpenAICompatAdapter, VllmAdapter, SglangAdapter, MaxAdapter, LmdeployAdapter,
              TrtllmAdapter, TgiAdapter, LlamacppAdapter, MlcAdapter, OllamaAdapter)
}


class UnknownRuntimeError(InferplaneError, KeyError):
    def __str__(self) -> str:
        close = difflib.get_close_matches(str(self.args[0]), adapter_names(), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown runtime {self.args[0]!r}; {hint}known: {', '.join(adapter_names())}"


def adapter_names() -> tuple[str, ...]:
    return tuple(sorted(_FACTORIES))


def get_adapter(name: str) -> RuntimeAdapter:
    try:
        return _FACTORIES[name]()
    except KeyError:
        raise UnknownRuntimeError(name) from None
