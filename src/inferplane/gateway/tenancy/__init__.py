"""Tenancy: who is calling (keys -> tenants), whether they may (scopes, limits), and the
tenant observer that settles what each request used.

- ``keys``: hashing, ``KeyRing`` (API keys -> ``Tenant``), the admin key.
- ``gcra``: the rate buckets (pure step + in-process store); ``redis_store``: the same in Redis.
- ``limiter``: ``Limiter.admit`` / ``settle``, OpenAI's ``x-ratelimit-*`` headers.
- ``observer``: ``TenantObserver`` (settles reservations in ``finished``; per-tenant metrics).

Holding requests when replicas are full is the router's (``routing/router.py``), in the
one held-request queue, ordered by ``routing/fair.py``.
"""
