"""API keys and the tenants they name.

A key is never stored: the config holds its SHA-256, and a request's key is hashed and
looked up (one ``hashlib.sha256`` of a short string and a dict lookup). Comparing digests
by lookup leaks nothing useful through timing: learning a digest's prefix does not help
find a key that hashes to it.

The admin key is separate (``gateway.admin_key_env``) and is not an API key: it opens
``/admin/*`` only, and no API key opens ``/admin/*`` when it is set.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from inferplane.config.tenants import DEFAULT_TENANT, PRIORITIES, TenantConfig

__all__ = ["KeyRing", "Tenant", "hash_key", "new_key"]

KEY_PREFIX = "ipk-"


def hash_key(key: str) -> str:
    """The SHA-256 of ``key`` (UTF-8) as 64 lowercase hex digits: what ``key_sha256`` holds."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh random API key (256 bits, URL-safe) and its SHA-256."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, hash_key(key)


@dataclass(frozen=True, slots=True)
class Tenant:
    """One tenant as admission uses it (built once from its config)."""

    name: str
    deployments: frozenset[str] | None
    """What it may call; None: everything."""
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_concurrent: int | None = None
    priority: int = PRIORITIES["normal"]
    priority_name: str = "normal"

    def may_call(self, deployment: str) -> bool:
        return self.deployments is None or deployment in self.deployments

    @property
    def limited(self) -> bool:
        return self.rpm_limit is not None or self.tpm_limit is not None or self.max_concurrent is not None

    @classmethod
    def from_config(cls, t: TenantConfig) -> Tenant:
        return cls(t.name, None if t.deployments is None else frozenset(t.deployments), t.rpm_limit,
                   t.tpm_limit, t.max_concurrent, t.priority_rank, t.priority)


class KeyRing:
    """Keys -> tenants. The plain ``api_keys`` list is the tenant ``default`` (no limits)."""

    def __init__(self, tenants: Sequence[TenantConfig] = (), api_keys: Sequence[str] = (),
                 admin_key: str | None = None) -> None:
        self.tenants: dict[str, Tenant] = {t.name: Tenant.from_config(t) for t in tenants}
        self._by_hash: dict[str, Tenant] = {t.key_sha256: self.tenants[t.name] for t in tenants}
        if api_keys:
            default = self.tenants[DEFAULT_TENANT] = Tenant(DEFAULT_TENANT, None)
            for k in api_keys:
                self._by_hash.setdefault(hash_key(k), default)
        self._admin_digest = hash_key(admin_key) if admin_key else None

    @property
    def required(self) -> bool:
        """Whether API requests must carry a key (some key or tenant is configured)."""
        return bool(self._by_hash)

    @property
    def admin_separate(self) -> bool:
        """Whether /admin/* has its own key (then API keys never open it)."""
        return self._admin_digest is not None

    def tenant(self, key: str | None) -> Tenant | None:
        """The tenant ``key`` names, or None."""
        return None if key is None else self._by_hash.get(hash_key(key))

    def is_admin(self, key: str | None) -> bool:
        """Whether ``key`` is the admin key (constant-time comparison of digests)."""
        return key is not None and self._admin_digest is not None and \
            hmac.compare_digest(hash_key(key), self._admin_digest)
