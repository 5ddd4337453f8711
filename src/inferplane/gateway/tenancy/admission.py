"""``TenantAdmission``: the gateway's ``Admission`` (``gateway/admission.py``) for keys and tenants.

1. ``authenticate`` - the key from the surface's key headers (``Authorization: Bearer``,
   Anthropic's ``x-api-key``) names a tenant, or the request gets 401. The ``Principal``
   carries the tenant's name, priority class and the deployments it may call (the
   pipeline's model lookup answers 403 for any other name, served or not, so the answer
   tells a key nothing about deployments it may not call).
2. ``admit`` - the tenant's limits (``limiter.Limiter``): refused with 429 (or 503 when the
   limits store is down and the policy is ``closed``); admitted with its reservation in
   ``rec.notes`` for the tenant observer, which settles it at ``finished``. Either way the
   response carries the ``x-ratelimit-*`` headers of the limits the tenant has.
3. ``authenticate_admin`` - for ``/admin/*`` (and other admin pages): the admin key when
   ``gateway.admin_key_env`` is set (no API key opens it then); otherwise the plain
   ``api_keys`` as before - but never a tenant's key.
"""

from __future__ import annotations

from inferplane.config.tenants import DEFAULT_TENANT
from inferplane.gateway.admission import ANONYMOUS, Principal, key_from
from inferplane.gateway.surfaces.base import InferenceRequest, Rejection
from inferplane.gateway.tenancy.keys import KeyRing
from inferplane.gateway.tenancy.limiter import Limiter
from inferplane.gateway.tenancy.observer import NOTE, TenantObserver
from inferplane.observability.observer import RequestRecord

__all__ = ["TenantAdmission"]

_NO_HEADERS: list[tuple[str, str]] = []
_ADMIN_KEY_HEADERS = ("authorization", "x-api-key")


class TenantAdmission:
    """See the module docstring. Built once by ``serve``; O(1) per request."""

    def __init__(self, keys: KeyRing, limiter: Limiter | None, observer: TenantObserver) -> None:
        self.keys = keys
        self.limiter = limiter
        self.observer = observer
        self._principals = {name: Principal(name, t.priority_name, t.deployments) for name, t in keys.tenants.items()}

    def authenticate(self, headers: dict[str, str], key_headers: tuple[str, ...]) -> Principal:
        if not self.keys.required:
            return ANONYMOUS
        tenant = self.keys.tenant(key_from(headers, key_headers))
        if tenant is None:
            hint = " or ".join(f"'{h}: <key>'" if h != "authorization" else "'Authorization: Bearer <key>'"
                               for h in key_headers)
            raise Rejection(401, f"invalid or missing API key (send {hint})", code="invalid_api_key",
                            headers=[("WWW-Authenticate", "Bearer")])
        return self._principals[tenant.name]

    def authenticate_admin(self, headers: dict[str, str]) -> None:
        """Let an admin request through, or raise Rejection (401 no/wrong key, 403 an API key)."""
        keys = self.keys
        key = key_from(headers, _ADMIN_KEY_HEADERS)
        if keys.admin_separate:
            if keys.is_admin(key):
                return
            if key is not None and keys.tenant(key) is not None:
                raise Rejection(403, "API keys do not open /admin/*; send the admin key (the one in the "
                                "environment variable gateway.admin_key_env names)", code="admin_key_required")
            raise Rejection(401, "invalid or missing admin key (send 'Authorization: Bearer <admin key>')",
                            code="invalid_api_key", headers=[("WWW-Authenticate", "Bearer")])
        if not keys.required:
            return
        tenant = keys.tenant(key)
        if tenant is None:
            raise Rejection(401, "invalid or missing API key (send 'Authorization: Bearer <key>')",
                            code="invalid_api_key", headers=[("WWW-Authenticate", "Bearer")])
        if tenant.name != DEFAULT_TENANT:
            raise Rejection(403, "a tenant's key does not open /admin/*; set gateway.admin_key_env and send "
                            "the admin key", code="admin_key_required")

    async def admit(self, rec: RequestRecord, req: InferenceRequest, principal: Principal) -> list[tuple[str, str]]:
        name = principal.name
        limiter = self.limiter
        if name is None or limiter is None:
            return _NO_HEADERS
        tenant = self.keys.tenants[name]
        if not tenant.limited:
            return _NO_HEADERS
        n = req.data.get("n")
        v = await limiter.admit(tenant, body_len=len(req.body), max_tokens=req.max_tokens,
                                n=n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1)
        if v.reservation is None:
            if v.status == 429:
                self.observer.refused(name, v.limit)
            raise Rejection(v.status, v.message, code=v.code,
                            type_="rate_limit_error" if v.status == 429 else None, headers=v.headers)
        rec.notes[NOTE] = v.reservation
        return v.headers
