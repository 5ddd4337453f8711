"""Tenants: who may call the gateway, what, and how much (``gateway.tenants``).

::

    gateway:
      admin_key_env: INFERPLANE_ADMIN_KEY      # guards /admin/* only; API keys never do
      limits_store: redis://127.0.0.1:6379     # shared by every gateway (default: in-process)
      tenants:
        - name: search-team
          key_sha256: 9f86d0...                # `inferplane keys new` prints a key and its hash
          deployments: [smollm2]               # default: all
          rpm_limit: 600
          tpm_limit: 200000                    # prompt + completion tokens per minute
          max_concurrent: 32
          priority: high                       # high | normal | low

Keys are stored only as their SHA-256 (hex). The plain ``api_keys`` list is one tenant
named ``default`` with no limits and access to every deployment.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DEFAULT_TENANT", "PRIORITIES", "TenantConfig"]

DEFAULT_TENANT = "default"
"""The tenant the plain ``api_keys`` list stands for."""

PRIORITIES: dict[str, int] = {"high": 0, "normal": 1, "low": 2}
"""Admission classes, in release order (lower goes first)."""

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class TenantConfig(BaseModel):
    """One team (or application) with its own key, scope and limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Tenant name, as it appears in metrics, logs and /admin/queues.")
    key_sha256: str = Field(
        description="SHA-256 of the tenant's API key, 64 hex digits (`inferplane keys new` prints both). "
        "Clients send the key itself: 'Authorization: Bearer <key>' or 'x-api-key: <key>'."
    )
    deployments: tuple[str, ...] | None = Field(
        None, description="Deployments this key may call (default: all). Others answer 403, and are left "
        "out of its GET /v1/models."
    )
    rpm_limit: int | None = Field(None, ge=1, description="Requests per minute (default: unlimited).")
    tpm_limit: int | None = Field(
        None, ge=1, description="Prompt + completion tokens per minute, as the runtime reported them "
        "(default: unlimited)."
    )
    max_concurrent: int | None = Field(
        None, ge=1, description="Requests in progress at once (default: unlimited); one more gets 429."
    )
    priority: Literal["high", "normal", "low"] = Field(
        "normal", description="Admission class when replicas are full: held requests of a higher class "
        "are let go first; tenants of one class share fairly."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _TENANT_NAME.match(v):
            raise ValueError("name must be 1-64 characters of letters, digits and . _ -, starting alphanumeric")
        return v

    @field_validator("key_sha256")
    @classmethod
    def _hash(cls, v: str) -> str:
        v = v.strip().lower()
        if not _HEX64.match(v):
            raise ValueError("key_sha256 must be the key's SHA-256 as 64 hex digits (`inferplane keys new` "
                             "prints it; `printf %s KEY | sha256sum` computes it)")
        return v

    @property
    def priority_rank(self) -> int:
        return PRIORITIES[self.priority]
