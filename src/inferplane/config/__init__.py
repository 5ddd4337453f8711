"""User-settable configuration: the deployment file, CLI flags and ``INFERPLANE_*`` env vars."""

from inferplane.config.models import (
    DeploymentConfig,
    GatewayConfig,
    InferplaneConfig,
    ReplicaTarget,
    config_json_schema,
    load_config,
)

__all__ = [
    "DeploymentConfig",
    "GatewayConfig",
    "InferplaneConfig",
    "ReplicaTarget",
    "config_json_schema",
    "load_config",
]
