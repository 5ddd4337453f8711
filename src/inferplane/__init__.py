"""inferplane: one OpenAI-compatible endpoint in front of any LLM inference runtime."""

__version__ = "0.1.0"

__all__ = ["__version__"]
