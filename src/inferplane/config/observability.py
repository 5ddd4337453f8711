"""Config of the gateway's traces and access log (``gateway.tracing``, ``gateway.access_log``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["TracingConfig"]


class TracingConfig(BaseModel):
    """OpenTelemetry traces over OTLP/HTTP (protobuf). Needs ``pip install 'inferplane[tracing]'``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    otlp_endpoint: str = Field(
        "http://127.0.0.1:4318", description="The collector's OTLP/HTTP base URL; spans are POSTed to "
        "<otlp_endpoint>/v1/traces (a URL already ending in /v1/traces is used as it is)."
    )
    sample_ratio: float = Field(
        1.0, ge=0.0, le=1.0, description="Share of requests traced (a client's sampled traceparent is "
        "always followed: parent-based sampling)."
    )
    service_name: str = Field("inferplane", min_length=1, description="The ``service.name`` of the spans.")
    export_timeout_s: float = Field(10.0, gt=0, description="Longest one export to the collector may take, seconds.")
    max_queue_spans: int = Field(
        4096, ge=64, description="Spans buffered for export; past this new spans are dropped (never blocking "
        "requests)."
    )

    @field_validator("otlp_endpoint")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("otlp_endpoint must start with http:// or https:// (OTLP/HTTP)")
        return v.rstrip("/")

    @property
    def traces_url(self) -> str:
        return self.otlp_endpoint if self.otlp_endpoint.endswith("/v1/traces") else self.otlp_endpoint + "/v1/traces"
