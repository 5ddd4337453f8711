"""The operations the gateway serves, as one enum (never free strings).

A ``Route`` is what a request asks for, whatever surface it came in on: an Anthropic
``/v1/messages`` and an Ollama ``/api/chat`` are both ``Route.CHAT``. Upstream paths,
metrics labels (``route="chat"``) and dialect hooks key on it. ``StrEnum``: the value is
the metrics label, and comparing with the old strings keeps working.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Route", "SurfaceName"]


class Route(StrEnum):
    CHAT = "chat"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    RESPONSES = "responses"


class SurfaceName(StrEnum):
    """The client-facing API a request came in on (its errors and stream go back in that shape)."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    OLLAMA = "ollama"
