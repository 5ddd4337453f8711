"""Building admission from the gateway config, once, in ``serve``'s composition root."""

from __future__ import annotations

from dataclasses import dataclass

from inferplane.config.models import GatewayConfig, admin_key
from inferplane.gateway.tenancy.admission import TenantAdmission
from inferplane.gateway.tenancy.gcra import LimitStore, MemoryStore
from inferplane.gateway.tenancy.keys import KeyRing
from inferplane.gateway.tenancy.limiter import Limiter
from inferplane.gateway.tenancy.observer import TenantObserver

__all__ = ["Tenancy", "build_tenancy"]


@dataclass(frozen=True, slots=True)
class Tenancy:
    admission: TenantAdmission
    observer: TenantObserver
    limiter: Limiter | None

    @property
    def request_observers(self) -> tuple[TenantObserver, ...]:
        """What to add to the gateway's request observers: the tenant observer, or nothing when
        no key is configured (then no request has a tenant or a reservation, and its ``finished``
        would only return; it stays a Prometheus collector either way)."""
        return (self.observer,) if self.admission.keys.required else ()

    async def close(self) -> None:
        if self.limiter is not None:
            await self.limiter.close()


def build_tenancy(config: GatewayConfig) -> Tenancy:
    """Keys, limiter (with its store) and observer for ``config``. Raises ConfigError (admin
    key named but unset) and RuntimeError (a Redis store without the redis package)."""
    keys = KeyRing(config.tenants, config.api_keys, admin_key=admin_key(config))
    limiter = None
    if any(t.rpm_limit or t.tpm_limit or t.max_concurrent for t in config.tenants):
        store: LimitStore
        if config.limits_store is not None:
            from inferplane.gateway.tenancy.redis_store import RedisStore

            store = RedisStore(config.limits_store, timeout_s=config.limits_store_timeout_s)
        else:
            store = MemoryStore()
        limiter = Limiter(store, failure=config.limits_store_failure,
                          reserved_completion_tokens=config.reserved_completion_tokens)
    observer = TenantObserver(limiter)
    return Tenancy(TenantAdmission(keys, limiter, observer), observer, limiter)
