"""Config of the control plane: a deployment's autoscaling bounds and targets, and drain.

Kept apart from ``models.py`` so the deployment file's scaling knobs read as one unit::

    deployments:
      - name: smollm2
        autoscale:
          min_replicas: 0
          max_replicas: 4
          target_in_flight_per_replica: 3
          scale_up_delay_s: 0
          scale_down_delay_s: 60
          scale_to_zero_after_s: 300
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["AutoscaleConfig"]


class AutoscaleConfig(BaseModel):
    """How the autoscaler sizes one deployment (see docs/autoscaling.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_replicas: int = Field(1, ge=0, le=64, description="Fewest replicas; 0 allows scale to zero.")
    max_replicas: int = Field(4, ge=1, le=64, description="Most replicas.")
    target_in_flight_per_replica: float = Field(
        3.0, gt=0, description="Requests in flight (and held) per replica the autoscaler aims for."
    )
    ttft_slo_s: float | None = Field(
        None, gt=0, description="Time-to-first-token target, seconds: a p95 above it asks for one more replica."
    )
    kv_cache_high: float = Field(
        0.9, gt=0, le=1, description="Scraped KV-cache usage (0..1) above which the runtime counts as full."
    )
    scale_up_delay_s: float = Field(
        0.0, ge=0, description="Load must stay above target this long before replicas are added, seconds."
    )
    scale_down_delay_s: float = Field(
        60.0, ge=0, description="Load must stay below target this long before a replica is removed, seconds."
    )
    scale_to_zero_after_s: float = Field(
        300.0, ge=0, description="With min_replicas 0: no request for this long stops every replica, seconds."
    )
    interval_s: float = Field(1.0, gt=0, le=60, description="How often the autoscaler decides, seconds.")

    @model_validator(mode="after")
    def _bounds(self) -> AutoscaleConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas}); "
                "lower min_replicas or raise max_replicas"
            )
        return self
