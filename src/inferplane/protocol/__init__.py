"""Wire types and codecs for the OpenAI, Anthropic and Ollama surfaces.

Imports nothing from the rest of inferplane. HTTP status codes are chosen in
``gateway``; this package only knows the shapes of bodies.
"""
