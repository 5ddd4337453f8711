"""``TenantAdmission``: who is calling (keys -> tenants), what they may call, their limits, the admin key.

Four questions, each answered in O(1) on the event loop, each refusing with a ``Refusal``
(status, message, code, headers) that the gateway renders in the surface's error shape:

1. ``tenant(headers, key_headers)`` - the key from the surface's key headers
   (``Authorization: Bearer``, Anthropic's ``x-api-key``) names a tenant, or 401. None when
   no keys are configured (anonymous).
2. ``check_scope(tenant, model)`` - 403 for any model outside the tenant's ``deployments``,
   served or not, worded the same, so the answer tells a key nothing about deployments it
   may not call (asked before the gateway looks the model up).
3. ``await admit(notes, tenant, ...)`` - the tenant's limits (``limiter.Limiter``): refused
   with 429 (or 503 when the limits store is down and the policy is ``closed``); admitted
   with its reservation in ``notes`` (the request record's) for the tenant observer, which
   settles it at ``finished``. Either way the ``x-ratelimit-*`` headers of the limits the
   tenant has.
4. ``check_admin(headers)`` - for ``/admin/*``: the admin key when ``gateway.admin_key_env``
   is set (no API key opens it then: 403); otherwise the plain ``api_keys`` as before -
   never a tenant's key.

``authenticate`` and ``admit`` are the pipeline's ``Admission`` contract
(``gateway/admission.py``) over these: the ``Principal`` carries the tenant's name,
priority and scope (the pipeline's model lookup applies the scope), and a ``Refusal``
becomes the surface's ``Rejection``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from inferplane.config.tenants import DEFAULT_TENANT
from inferplane.gateway.admission import ANONYMOUS, Principal, key_from
from inferplane.gateway.surfaces.base import InferenceRequest, Rejection
from inferplane.gateway.tenancy.keys import KeyRing, Tenant
from inferplane.gateway.tenancy.limiter import Limiter
from inferplane.gateway.tenancy.observer import NOTE, TenantObserver
from inferplane.observability.observer import RequestRecord

__all__ = ["Refusal", "TenantAdmission", "key_from"]

_NO_HEADERS: list[tuple[str, str]] = []
_ADMIN_KEY_HEADERS = ("authorization", "x-api-key")


class Refusal(Exception):
    """A request admission refuses: the client gets ``status`` with this message and code."""

    def __init__(self, status: int, message: str, *, code: str, headers: Iterable[tuple[str, str]] = (),
                 type_: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = list(headers)
        self.type = type_

    def rejection(self) -> Rejection:
        """The same refusal as the pipeline's exception (rendered in the surface's shape)."""
        return Rejection(self.status, self.message, code=self.code, type_=self.type, headers=self.headers)


def _unauthorized(key_headers: tuple[str, ...], what: str = "API key") -> Refusal:
    hint = " or ".join(f"'{h}: <key>'" if h != "authorization" else "'Authorization: Bearer <key>'"
                       for h in key_headers)
    return Refusal(401, f"invalid or missing {what} (send {hint})", code="invalid_api_key",
                   headers=[("WWW-Authenticate", "Bearer")], type_="authentication_error")


class TenantAdmission:
    """See the module docstring. Built once by ``serve`` (``setup.build_tenancy``)."""

    def __init__(self, keys: KeyRing, limiter: Limiter | None, observer: TenantObserver) -> None:
        self.keys = keys
        self.limiter = limiter
        self.observer = observer
        self._anonymous = not keys.required  # a KeyRing does not change once built
        self._principals = {name: Principal(name, t.priority_name, t.deployments, t.priority, limiter is not None)
                            for name, t in keys.tenants.items()}

    # -- the pipeline's Admission contract -------------------------------------------------

    def authenticate(self, headers: dict[str, str], key_headers: tuple[str, ...]) -> Principal:
        if self._anonymous:  # no keys configured: everyone is anonymous (the per-request common case)
            return ANONYMOUS
        try:
            tenant = self.tenant(headers, key_headers)
        except Refusal as r:
            raise r.rejection() from None
        return ANONYMOUS if tenant is None else self._principals[tenant.name]

    async def admit(self, rec: RequestRecord, req: InferenceRequest, principal: Principal) -> list[tuple[str, str]]:
        name = principal.name
        if name is None or self.limiter is None:
            return _NO_HEADERS
        try:
            return await self.admit_limits(rec.notes, self.keys.tenants[name], body_len=len(req.body),
                                           max_tokens=req.max_tokens, n=req.data.get("n"))
        except Refusal as r:
            raise r.rejection() from None

    def tenant(self, headers: dict[str, str], key_headers: tuple[str, ...]) -> Tenant | None:
        """The tenant the request's key names; None with no keys configured. Raises Refusal (401)."""
        if not self.keys.required:
            return None
        tenant = self.keys.tenant(key_from(headers, key_headers))
        if tenant is None:
            raise _unauthorized(key_headers)
        return tenant

    @staticmethod
    def check_scope(tenant: Tenant | None, model: Any) -> None:
        """Raises Refusal (403) when ``tenant`` may not call ``model`` (whatever it names)."""
        if tenant is not None and tenant.deployments is not None and model not in tenant.deployments:
            shown = model if isinstance(model, str) else "(none)"
            raise Refusal(403, f"this API key may not call the model {shown[:200]!r}; GET /v1/models lists "
                          "the models it may call", code="model_not_allowed", type_="permission_error")

    def check_admin(self, headers: dict[str, str]) -> None:
        """Let an admin request through, or raise Refusal (401 no or a wrong key, 403 an API key)."""
        keys = self.keys
        key = key_from(headers, _ADMIN_KEY_HEADERS)
        if keys.admin_separate:
            if keys.is_admin(key):
                return
            if keys.tenant(key) is not None:
                raise Refusal(403, "API keys do not open /admin/*; send the admin key (the one in the environment "
                              "variable gateway.admin_key_env names)", code="admin_key_required",
                              type_="permission_error")
            raise _unauthorized(("authorization",), "admin key")
        if not keys.required:
            return
        tenant = keys.tenant(key)
        if tenant is None:
            raise _unauthorized(("authorization",))
        if tenant.name != DEFAULT_TENANT:
            raise Refusal(403, "a tenant's key does not open /admin/*; set gateway.admin_key_env and send the "
                          "admin key", code="admin_key_required", type_="permission_error")

    async def admit_limits(self, notes: dict[str, Any], tenant: Tenant | None, *, body_len: int,
                           max_tokens: int | None, n: Any = 1) -> list[tuple[str, str]]:
        """Admit the request under ``tenant``'s limits: the x-ratelimit-* headers, or Refusal (429/503)."""
        limiter = self.limiter
        if tenant is None or limiter is None or not tenant.limited:
            return _NO_HEADERS
        v = await limiter.admit(tenant, body_len=body_len, max_tokens=max_tokens,
                                n=n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1)
        if v.reservation is None:
            if v.status == 429:
                self.observer.refused(tenant.name, v.limit)
            raise Refusal(v.status, v.message, code=v.code, headers=v.headers,
                          type_="rate_limit_error" if v.status == 429 else None)
        notes[NOTE] = v.reservation
        return v.headers
