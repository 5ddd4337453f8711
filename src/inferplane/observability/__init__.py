"""Metrics registry, normalized runtime metrics, tracing."""
