"""Client-facing API surfaces: one module per client API (Anthropic, Ollama; OpenAI is the gateway's own).

A surface parses its API's request into the canonical (OpenAI) request, hands it to the
gateway's one request path, and encodes what comes back - answer, stream or error - in its
own API's shape, through :class:`~inferplane.gateway.surfaces.translating.TranslatingResponder`.
"""
