"""The dashboard's feed over a real control plane (fake backend), router, held queue and
autoscaler; the page's headers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson

from inferplane.autoscale import Autoscaler, SignalReader
from inferplane.config.models import parse_config
from inferplane.gateway.dashboard import (
    FEED_PATH,
    PAGE_PATH,
    Dashboard,
    TenantUsage,
    page_headers,
    tenants_provider,
)
from inferplane.observability.observer import Outcome, RequestRecord, Usage
from inferplane.observability.recent import RecentRequests
from inferplane.observability.stats import EndpointStats
from inferplane.observability.tenant_window import TenantWindows
from inferplane.placement.plane import ControlPlane
from inferplane.protocol.routes import Route, SurfaceName
from inferplane.routing.held import HeldQueue
from inferplane.routing.registry import EndpointRegistry
from inferplane.routing.router import RouteInfo, Router

sys.path.insert(0, str(Path(__file__).parent.parent / "placement"))
from fakes import FakeBackend, FakeClock


class _Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _build(tenants: list[TenantUsage] | None = None):  # type: ignore[no-untyped-def]
    (dep,) = parse_config({"deployments": [{
        "name": "chat", "runtime": "openai", "model": "m", "replicas": 2, "policy": "least_load",
        "autoscale": {"min_replicas": 1, "max_replicas": 4, "target_in_flight_per_replica": 1}}]}).deployments
    reg, backend, clock = EndpointRegistry(), FakeBackend(), FakeClock()
    plane = ControlPlane(registry=reg, backend=backend, ready_timeout_s=30, clock=clock)
    plane.add(dep, run_loop=False)
    held = HeldQueue(timeout_s=30, max_depth=10, clock=clock)
    router = Router(reg, (dep,), held=held)
    auto = Autoscaler(plane.controllers, SignalReader(reg, held), clock=clock)
    rclock = _Clock(1000.0)
    recent = RecentRequests(window_s=60, bucket_s=10, summary_s=30, clock=rclock)
    dash = Dashboard(registry=reg, router=router, recent=recent, plane=plane, held=held, autoscaler=auto,
                     tenants=(lambda: tenants) if tenants is not None else None, wall=lambda: 5000.0)
    return dash, plane, reg, backend, held, router, auto, recent, rclock


def _finish(recent: RecentRequests, t: float, status: int = 200) -> None:
    rec = RequestRecord("r", SurfaceName.OPENAI, Route.CHAT, t - 1.0, 0.0, "/v1/chat/completions",
                        model="chat", stream=True)
    recent.finished(rec, Outcome(status, t, usage=Usage(3, 5), ttft_s=0.2))


def test_the_feed_shows_replicas_load_queue_windows_decisions_and_autoscaling() -> None:
    async def body() -> None:
        dash, _plane, reg, backend, held, router, auto, recent, rclock = _build()
        backend.handles[0].become_ready()
        a, b = reg.endpoints("chat")
        a.stats = EndpointStats(running=2, waiting=1, kv_cache_usage=0.25, prefix_cache_hits=30,
                                prefix_cache_queries=100)
        st = dash.state()
        (d,) = st["deployments"]
        assert d["replicas"] == {"desired": 2, "starting": 1, "ready": 1, "draining": 0, "external": 0}
        assert d["runtime"] == "openai" and d["policy"] == "least_load" and d["autoscale"] is True
        ready = next(e for e in d["endpoints"] if e["state"] == "ready")
        assert (ready["running"], ready["waiting"], ready["kv_cache_usage"]) == (2, 1, 0.25)
        assert ready["prefix_hit_rate"] == 0.3
        assert ready["prefix_hit_rate_recent"] is None  # no earlier reading to compare with yet
        assert d["recent"] is None and st["requests_total"] == 0

        # the second replica comes up; requests are routed, counted, one is held
        backend.handles[1].become_ready()
        for i in range(4):
            choice = router.pick(RouteInfo("chat", None, lambda i=i: f"prompt {i}"), set())
            assert choice is not None
            reg.acquire(choice.endpoint)
        for t in (995.0, 996.0, 999.0):
            _finish(recent, t)
        _finish(recent, 999.5, status=502)
        waiter = asyncio.ensure_future(held.wait(held.ticket("chat")))
        await asyncio.sleep(0)
        a.stats = EndpointStats(prefix_cache_hits=90, prefix_cache_queries=200)  # +60 hits of +100 queries
        auto.tick()

        st = orjson.loads(orjson.dumps(dash.state()))  # it is plain JSON
        (d,) = st["deployments"]
        assert d["replicas"]["ready"] == 2
        assert sum(e["in_flight"] for e in d["endpoints"]) == 4
        assert d["queue"]["depth"] == 1 and d["queue"]["held_total"] == 1
        a_view = next(e for e in d["endpoints"] if e["id"] == a.id)
        assert a_view["prefix_hit_rate_recent"] == 0.6 and a_view["prefix_hit_rate"] == 0.45
        summary = d["recent"]["summary"]
        assert summary["requests"] == 4 and summary["server_errors"] == 1
        assert abs(summary["ttft_p50_s"] - 0.2) < 0.2 * 0.02
        assert [p["requests"] for p in d["recent"]["series"]][-2:] == [4, 0]
        assert st["requests_total"] == 4 and st["summary"]["requests"] == 4
        decisions = st["routing"]["decisions"]
        assert len(decisions) == 4 and decisions[0]["policy"] == "least_load"
        assert set(decisions[0]["scores"]) <= {a.id, b.id} and decisions[0]["endpoint"] in decisions[0]["scores"]
        assert st["routing"]["counts"] == [{"deployment": "chat", "policy": "least_load", "decisions": 4}]
        hist = st["autoscaler"]["history"]
        assert hist and hist[0]["deployment"] == "chat" and hist[0]["to"] > hist[0]["from"]
        assert st["autoscaler"]["deployments"]["chat"]["enabled"] is True
        assert any(ev["deployment"] == "chat" for ev in st["events"])
        assert st["tenants"] is None and "no tenants" in st["tenants_note"]
        waiter.cancel()

        rclock.t += 120  # two windows later nothing recent is left
        d = dash.state()["deployments"][0]
        assert d["recent"]["summary"]["requests"] == 0

    asyncio.run(body())


def test_tenants_are_listed_nearest_their_limit_first() -> None:
    tenants = [TenantUsage("relaxed", rpm_used=10, rpm_limit=600),
               TenantUsage("busy", "high", rpm_used=10, rpm_limit=600, tpm_used=190_000, tpm_limit=200_000),
               TenantUsage("unlimited")]
    async def body() -> dict:  # type: ignore[type-arg]
        return _build(tenants)[0].state()

    st = asyncio.run(body())
    assert [t["tenant"] for t in st["tenants"]] == ["busy", "relaxed", "unlimited"]
    assert st["tenants"][0]["nearest"] == 0.95 and st["tenants"][2]["nearest"] == 0.0
    assert st["tenants_total"] == 3 and st["tenants_note"] is None


def test_routes_and_the_page_is_shipped_with_a_strict_csp() -> None:
    async def body() -> Dashboard:
        return _build()[0]

    dash = asyncio.run(body())
    assert set(dash.routes(PAGE_PATH) or {}) == {"GET"}
    assert set(dash.routes(FEED_PATH) or {}) == {"GET"}
    assert FEED_PATH.startswith("/admin/")  # guarded like the rest of the admin API
    assert dash.routes("/dashboard/x") is None
    page = dash._page
    assert b"<title>inferplane dashboard</title>" in page
    assert not re.search(rb"""(src|href)=["']?(https?:)?//""", page)  # nothing from elsewhere
    headers = dict(page_headers(page))
    csp = headers["Content-Security-Policy"]
    script = re.search(rb"<script>(.*?)</script>", page, re.S).group(1)  # type: ignore[union-attr]
    digest = base64.b64encode(hashlib.sha256(script).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert headers["Content-Type"].startswith("text/html")


@dataclass(frozen=True)
class _Limits:
    name: str
    priority: str = "normal"
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_concurrent: int | None = None


def _tenant_request(w: TenantWindows, tenant: str | None, t: float, status: int = 200, tokens: int = 100) -> None:
    rec = RequestRecord("r", SurfaceName.OPENAI, Route.CHAT, t - 1, 0.0, "/v1/chat/completions", model="chat",
                        tenant=tenant)
    w.finished(rec, Outcome(status, t, usage=Usage(tokens // 2, tokens - tokens // 2) if status < 400 else None))


def test_tenant_usage_counts_the_last_minute_against_the_configured_limits() -> None:
    clock = _Clock(1000.0)
    w = TenantWindows(window_s=60, bucket_s=5, clock=clock)
    _tenant_request(w, "search", 900.0)                 # over a minute ago: gone
    for i in range(9):
        _tenant_request(w, "search", 950.0 + i)        # 9 requests, 900 tokens in the last minute
    _tenant_request(w, "search", 999.0, status=429)     # refused by the gateway: no use
    _tenant_request(w, "search", 999.0, status=502)     # reached upstream and failed: counts, no tokens
    _tenant_request(w, "default", 999.0, tokens=10)     # the plain api_keys tenant, no limits
    _tenant_request(w, None, 999.0)                     # no tenant: not counted
    provide = tenants_provider(lambda: [_Limits("search", "high", rpm_limit=10, tpm_limit=1000, max_concurrent=4),
                                        _Limits("idle", rpm_limit=60)], w, lambda: {"search": 3})
    rows = {t.tenant: t for t in provide()}
    s = rows["search"]
    assert (s.rpm_used, s.rpm_limit, s.tpm_used, s.tpm_limit, s.concurrent, s.max_concurrent) == (10, 10, 900, 1000, 3, 4)
    assert s.nearest == 1.0 and s.priority == "high"
    assert rows["idle"].rpm_used == 0 and rows["idle"].nearest == 0.0
    assert rows["default"].tpm_used == 10 and rows["default"].rpm_limit is None
    clock.t += 120
    assert {t.tenant: t.rpm_used for t in provide()} == {"search": 0, "idle": 0}
