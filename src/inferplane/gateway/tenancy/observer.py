"""The tenant observer: settles each request's reservation when it ends, and counts per tenant.

A request observer (``observability/observer.py``): ``finished`` is called exactly once per
request, whatever happened - served, failed upstream, refused by the gateway, client gone -
so it is where a reservation is settled (never left to go stale) and a concurrency place
given back. The reservation travels in ``rec.notes["tenant"]``, put there at admission.

What a request used, for ``tpm_limit`` and ``inferplane_tenant_tokens_total``: the usage the
runtime reported (``Outcome.usage``); none when no runtime was reached
(``Outcome.endpoint_id`` is None); the reserved estimate when a runtime was reached and
did not say (a stream cut short, a runtime that reports no usage).

It is also a Prometheus collector: the counts are plain counters per request (no label
lookups on the hot path), turned into metric families at scrape time.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from inferplane.gateway.tenancy.limiter import Limiter, Reservation
from inferplane.observability.observer import Attempt, Outcome, RequestRecord, ignores

__all__ = ["NOTE", "TenantObserver"]

NOTE = "tenant"
"""``rec.notes`` key of the request's ``Reservation``."""


class TenantObserver(Collector):
    """Settles reservations; exports per-tenant requests, tokens and refusals."""

    def __init__(self, limiter: Limiter | None) -> None:
        self.limiter = limiter
        self.requests: collections.Counter[tuple[str, int]] = collections.Counter()
        self.tokens: collections.Counter[tuple[str, str]] = collections.Counter()
        self.limited: collections.Counter[tuple[str, str]] = collections.Counter()

    def refused(self, tenant: str, limit: str) -> None:
        """Count a 429 of ``tenant`` (admission calls it with the verdict's ``limit``)."""
        self.limited[(tenant, limit)] += 1

    @ignores
    def started(self, rec: RequestRecord) -> None:
        return None

    @ignores
    def attempt(self, rec: RequestRecord, attempt: Attempt) -> None:
        return None

    @ignores
    def first_token(self, rec: RequestRecord, t: float) -> None:
        return None

    def finished(self, rec: RequestRecord, outcome: Outcome) -> None:
        tenant = rec.tenant
        if tenant is None:
            return
        self.requests[(tenant, outcome.status)] += 1
        u = outcome.usage
        used: int | None
        if u is not None and (u.prompt_tokens is not None or u.completion_tokens is not None):
            used = u.total_tokens
            tokens = self.tokens
            if u.prompt_tokens:
                tokens[(tenant, "prompt")] += u.prompt_tokens
            if u.completion_tokens:
                tokens[(tenant, "completion")] += u.completion_tokens
            if u.cached_tokens:
                tokens[(tenant, "cached")] += u.cached_tokens
        else:
            used = 0 if outcome.endpoint_id is None else None
        res = rec.notes.get(NOTE)
        if isinstance(res, Reservation) and self.limiter is not None:
            self.limiter.settle(res, used)

    # -- Prometheus ----------------------------------------------------------------------

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        req = CounterMetricFamily("inferplane_tenant_requests", "Inference requests per tenant, by the status "
                                  "the client got.", labels=["tenant", "status"])
        for (tenant, status), n in sorted(self.requests.items()):
            req.add_metric([tenant, str(status)], float(n))
        yield req
        tok = CounterMetricFamily("inferplane_tenant_tokens", "Tokens per tenant as the runtimes reported them "
                                  "(kind: prompt, completion, cached).", labels=["tenant", "kind"])
        for (tenant, kind), n in sorted(self.tokens.items()):
            tok.add_metric([tenant, kind], float(n))
        yield tok
        lim = CounterMetricFamily("inferplane_tenant_rate_limited", "Requests refused by a tenant limit (429), "
                                  "by limit: requests, tokens, concurrency, too_large.", labels=["tenant", "limit"])
        for (tenant, limit), n in sorted(self.limited.items()):
            lim.add_metric([tenant, limit], float(n))
        yield lim
        g = GaugeMetricFamily("inferplane_tenant_in_progress", "Requests of the tenant in progress in this gateway "
                              "(counted against max_concurrent).", labels=["tenant"])
        if self.limiter is not None:
            for name, n in sorted(self.limiter.in_progress.items()):
                g.add_metric([name], float(n))
        yield g
        if self.limiter is not None:
            c = CounterMetricFamily("inferplane_limits_store_failures", "Requests whose limits store could not "
                                    "be asked (the failure policy decided).")
            c.add_metric([], float(self.limiter.store_failures))
            yield c
