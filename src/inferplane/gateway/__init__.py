"""The HTTP gateway: OpenAI surface, validation, limits and the proxy to runtime replicas.

The only package that produces HTTP status codes and OpenAI error bodies.
"""
