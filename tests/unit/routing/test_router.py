from __future__ import annotations

from inferplane.config.models import parse_config
from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.routing.router import RouteInfo, Router
from inferplane.runtimes.base import OPENAI_DIALECT


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _setup(deployments: list[dict], endpoints: dict[str, list[str]]) -> tuple[Router, EndpointRegistry, Clock]:
    cfg = parse_config({"deployments": deployments})
    reg = EndpointRegistry()
    for dep, ids in endpoints.items():
        for eid in ids:
            ep = Endpoint(id=eid, deployment=dep, runtime="openai", url=f"http://127.0.0.1/{eid}",
                          dialect=OPENAI_DIALECT, capacity=2)
            reg.add(ep)
            reg.set_ready(ep, True)
    clock = Clock()
    return Router(reg, cfg.deployments, clock=clock), reg, clock


def info(model: str, prompt: str = "hello " * 200) -> RouteInfo:
    return RouteInfo(model, None, lambda: prompt)


def test_tried_endpoints_are_skipped_and_none_when_all_tried() -> None:
    router, _, _ = _setup([{"name": "m", "replicas": 0, "endpoints": [{"url": "http://x"}]}], {"m": ["a", "b"]})
    first = router.pick(info("m"), set())
    assert first is not None
    second = router.pick(info("m"), {first.endpoint.id})
    assert second is not None and second.endpoint.id != first.endpoint.id
    assert router.pick(info("m"), {"a", "b"}) is None


def test_breaker_keeps_a_failing_endpoint_out_until_its_trial() -> None:
    router, reg, clock = _setup([{"name": "m", "replicas": 0, "endpoints": [{"url": "http://x"}],
                                  "breaker": {"failure_threshold": 2, "open_s": 5}}], {"m": ["a", "b"]})
    a = reg.get("a")
    router.failed(a)
    router.failed(a)
    picks = {router.pick(info("m", f"p{i}"), set()).endpoint.id for i in range(10)}
    assert picks == {"b"}
    clock.t = 6
    picks = [router.pick(info("m", f"q{i}"), {"b"}) for i in range(3)]
    assert picks[0] is not None and picks[0].endpoint.id == "a"  # the half-open trial
    assert picks[1] is None  # a second trial is not let through meanwhile


def test_fallback_deployment_serves_when_the_primary_has_nothing() -> None:
    router, reg, _ = _setup(
        [{"name": "big", "replicas": 0, "endpoints": [{"url": "http://x"}], "fallback": "small"},
         {"name": "small", "replicas": 0, "endpoints": [{"url": "http://y"}]}],
        {"big": ["big-1"], "small": ["small-1"]})
    c = router.pick(info("big"), set())
    assert c is not None and c.endpoint.id == "big-1" and not c.fallback
    reg.set_ready(reg.get("big-1"), False)
    c = router.pick(info("big"), set())
    assert c is not None and c.endpoint.id == "small-1" and c.fallback


def test_prefix_policy_sticks_a_shared_prefix_and_records_its_decision() -> None:
    router, _, _ = _setup([{"name": "m", "replicas": 0, "endpoints": [{"url": "http://x"}], "policy": "prefix"}],
                          {"m": ["a", "b", "c"]})
    system = "You are a helpful assistant. " * 40
    first = router.pick(info("m", system + "question one"), set())
    again = [router.pick(info("m", system + f"question {i}"), set()) for i in range(2, 6)]
    assert {c.endpoint.id for c in again} == {first.endpoint.id}
    assert all(c.predicted_cached_blocks and c.predicted_cached_blocks > 0 for c in again)
    d = router.decision_log()[-1]
    assert d["policy"] == "prefix" and set(d["scores"]) == {"a", "b", "c"}
    router.observed(again[-1], info("m", system + "question 5"), cached_tokens=300)
    assert router.prefix_observed_blocks["m"] == 300 * 4 // 256
