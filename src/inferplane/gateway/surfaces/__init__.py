"""Client-facing APIs on the gateway: one module per surface (see ``base.py`` for the contract)."""

from inferplane.gateway.surfaces.base import (
    Encoder,
    InferenceRequest,
    Rejection,
    Served,
    Surface,
    SurfaceRoute,
)
from inferplane.gateway.surfaces.openai import OpenAISurface

__all__ = ["Encoder", "InferenceRequest", "OpenAISurface", "Rejection", "Served", "Surface", "SurfaceRoute"]
