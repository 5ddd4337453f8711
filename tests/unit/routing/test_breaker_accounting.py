"""Breaker changes are logged (issue 10.8) and say when traffic may return (Retry-After, 10.5)."""

from __future__ import annotations

import logging

from inferplane.config.models import parse_config
from inferplane.routing.breaker import Breaker
from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.routing.router import RouteInfo, Router
from inferplane.runtimes.base import OPENAI_DIALECT


def test_breaker_open_and_close_are_warnings(caplog) -> None:
    cfg = parse_config({"deployments": [{"name": "m", "replicas": 0, "endpoints": [{"url": "http://x"}],
                                         "breaker": {"failure_threshold": 2, "open_s": 5}}]})
    reg = EndpointRegistry()
    ep = Endpoint(id="m-1", deployment="m", runtime="openai", url="http://127.0.0.1:1", dialect=OPENAI_DIALECT)
    reg.add(ep)
    reg.set_ready(ep, True)
    now = [0.0]
    router = Router(reg, cfg.deployments, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        router.failed(ep)
        assert not caplog.records  # one failure: nothing changed
        router.failed(ep)
        assert router.breaker(ep).reopens_in(now[0] + 1) == 4
        now[0] = 6.0
        choice = router.pick(RouteInfo("m", None, lambda: "hi"), set())
        assert choice is not None  # the half-open trial
        router.succeeded(choice)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["breaker of m-1 opened after 2 consecutive failure(s): no traffic for 5 s",
                        "breaker of m-1 closed: a trial request succeeded"]
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_reopens_in_is_zero_unless_open() -> None:
    b = Breaker(failure_threshold=1, open_s=10)
    assert b.reopens_in(0) == 0
    b.record_failure(100)
    assert b.reopens_in(103) == 7
    assert b.reopens_in(200) == 0
