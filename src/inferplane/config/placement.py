"""Config of placement: where replicas run (this machine or a Ray cluster), and how they spread.

The same deployment file serves a laptop and a cluster; only this section differs::

    placement:
      backend: ray             # default: local (child processes of `serve`)
      address: auto            # an existing cluster (RAY_ADDRESS, a local `ray start`), `local`
                               # (start one in-process), or ray://head:10001 (Ray Client)
    deployments:
      - name: smollm2
        placement:
          strategy: spread     # replicas of this deployment on different nodes (default); pack
          node_labels: {region: eu-west}   # only nodes with these Ray node labels
          memory_bytes: 2000000000         # reserved per replica on its node (Ray `memory`)

``follow`` makes a gateway that starts no replicas of its own and mirrors the endpoints of
another gateway's control plane (``serve --workers`` uses it between its processes).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["DeploymentPlacement", "PlacementConfig"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlacementConfig(_Strict):
    """Where the replicas of every deployment are launched."""

    backend: Literal["local", "ray"] = Field(
        "local", description="local: child processes of `serve` on this machine; ray: Ray actors on the "
        "nodes of a Ray cluster (needs `pip install 'inferplane[ray]'`).",
    )
    address: str = Field(
        "auto", description="Ray cluster to use (backend ray): auto (RAY_ADDRESS, else a cluster started "
        "on this machine with `ray start`), local (start a one-node cluster inside `serve`), "
        "or ray://HOST:PORT (Ray Client).",
    )
    namespace: str = Field(
        "inferplane", min_length=1, description="Ray namespace the replica actors are created in.",
    )
    follow: str | None = Field(
        None, description="Base URL of another gateway whose control plane this one follows: no replica "
        "is started here, its endpoints are mirrored from GET /admin/endpoints/feed there.",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        if v in ("auto", "local") or v.startswith("ray://") or ":" in v:
            return v
        raise ValueError("address must be auto, local, ray://HOST:PORT or HOST:PORT of a cluster's GCS")

    @field_validator("follow")
    @classmethod
    def _follow(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("follow must be a gateway's base URL (http://HOST:PORT)")
        return v.rstrip("/") if v else v


class DeploymentPlacement(_Strict):
    """How one deployment's replicas are placed on a cluster (backend ray; ignored locally)."""

    strategy: Literal["spread", "pack"] = Field(
        "spread", description="spread: each replica on a different node while there are nodes to spare "
        "(Ray's SPREAD scheduling strategy); pack: fill a node before the next (Ray's default strategy).",
    )
    node_labels: dict[str, str] = Field(
        default_factory=dict, description="Ray node labels a node must carry to run a replica (e.g. "
        "region: eu-west, accelerator: A100), set with `ray start --labels`.",
    )
    memory_bytes: int | None = Field(
        None, ge=0, description="Memory reserved per replica on its node, bytes (Ray's `memory` resource); "
        "default: none reserved.",
    )
    resources: dict[str, float] = Field(
        default_factory=dict, description="Custom Ray resources per replica (e.g. {'accelerator_type:A100': "
        "0.001}), for clusters that mark nodes with resources rather than labels.",
    )

    @model_validator(mode="after")
    def _labels(self) -> DeploymentPlacement:
        for key, value in self.node_labels.items():
            if not key or not value:
                raise ValueError("node_labels keys and values must be non-empty strings")
        return self
