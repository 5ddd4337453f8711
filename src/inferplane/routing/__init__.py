"""Endpoint registry, routing policies, health and breakers."""
