"""The per-request fan-outs skip what has nothing to do: ``@ignores`` observer methods,
``@failed_attempts_only`` attempts for an attempt that answered, and registry listeners that
take no load changes."""

from __future__ import annotations

import logging

import pytest

from inferplane.config import DeploymentConfig
from inferplane.observability.observer import (
    Attempt,
    Observers,
    Outcome,
    RequestRecord,
    failed_attempts_only,
    ignores,
)
from inferplane.protocol.routes import Route, SurfaceName
from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.runtimes.registry import get_adapter


class _Quiet:
    def __init__(self) -> None:
        self.finished_with: list[int] = []

    @ignores
    def started(self, rec: RequestRecord) -> None:
        raise AssertionError("an @ignores method must never be called")

    @ignores
    def attempt(self, rec: RequestRecord, attempt: Attempt) -> None:
        raise AssertionError("an @ignores method must never be called")

    @ignores
    def first_token(self, rec: RequestRecord, t: float) -> None:
        raise AssertionError("an @ignores method must never be called")

    def finished(self, rec: RequestRecord, outcome: Outcome) -> None:
        self.finished_with.append(outcome.status)


class _Broken:
    def started(self, rec: RequestRecord) -> None:
        raise ValueError("boom")

    def attempt(self, rec: RequestRecord, attempt: Attempt) -> None: ...

    def first_token(self, rec: RequestRecord, t: float) -> None: ...

    def finished(self, rec: RequestRecord, outcome: Outcome) -> None:
        raise ValueError("boom")


def _rec() -> RequestRecord:
    return RequestRecord("r1", SurfaceName.OPENAI, Route.CHAT, 0.0, 0.0, "/v1/chat/completions")


def test_ignored_methods_are_skipped_and_the_rest_still_run(caplog: pytest.LogCaptureFixture) -> None:
    quiet = _Quiet()
    obs = Observers((_Broken(), quiet))
    rec = _rec()
    with caplog.at_level(logging.ERROR):
        obs.started(rec)
        obs.attempt(rec, Attempt("e", "m", "openai", "least_load", "", "ok", 0.0, 1.0, 200))
        obs.first_token(rec, 0.5)
        obs.finished(rec, Outcome(200, 1.0))
        obs.finished(rec, Outcome(502, 2.0))
    assert quiet.finished_with == [200, 502]
    # the broken observer is named once per event and error kind, and never stops the others
    logged = [r.getMessage() for r in caplog.records]
    assert sum("_Broken failed in started" in m for m in logged) == 1
    assert sum("_Broken failed in finished" in m for m in logged) == 1


def test_an_observer_added_later_is_called_too() -> None:
    obs = Observers()
    assert not obs.wants_gaps
    quiet = _Quiet()
    obs.add(quiet)
    obs.finished(_rec(), Outcome(200, 1.0))
    assert quiet.finished_with == [200]
    assert list(obs) == [quiet]


class _Failures(_Quiet):
    def __init__(self) -> None:
        super().__init__()
        self.outcomes: list[str] = []

    @failed_attempts_only
    def attempt(self, rec: RequestRecord, attempt: Attempt) -> None:
        self.outcomes.append(attempt.outcome)


class _Every(_Failures):
    def attempt(self, rec: RequestRecord, attempt: Attempt) -> None:
        self.outcomes.append(attempt.outcome)


def _attempt(outcome: str) -> Attempt:
    return Attempt("e", "m", "openai", "least_load", "", outcome, 0.0, 1.0, 200 if outcome == "ok" else None)


def test_failed_attempts_only_sees_no_ok_attempt_and_says_so_to_the_attempt_loop() -> None:
    failures = _Failures()
    obs = Observers((failures,))
    assert not obs.wants_ok_attempts  # the attempt loop then builds no Attempt for an answering try
    for outcome in ("connect", "ok", "stale_connection", "request_fault"):
        obs.attempt(_rec(), _attempt(outcome))
    assert failures.outcomes == ["connect", "stale_connection", "request_fault"]
    every = _Every()
    obs.add(every)  # one observer that takes every attempt: the loop reports ok ones again
    assert obs.wants_ok_attempts
    obs.attempt(_rec(), _attempt("ok"))
    obs.attempt(_rec(), _attempt("timeout"))
    assert every.outcomes == ["ok", "timeout"]
    assert failures.outcomes == ["connect", "stale_connection", "request_fault", "timeout"]
    assert not Observers((_Quiet(),)).wants_ok_attempts and not Observers().wants_ok_attempts


class _Listener:
    def __init__(self) -> None:
        self.loads: list[int] = []
        self.routable: list[str] = []

    def routable_changed(self, endpoint: Endpoint) -> None:
        self.routable.append(endpoint.id)

    def load_changed(self, endpoint: Endpoint) -> None:
        self.loads.append(endpoint.in_flight)


def test_registry_load_listeners() -> None:
    registry = EndpointRegistry()
    every, routable_only = _Listener(), _Listener()
    registry.add_listener(every)
    registry.add_listener(routable_only, loads=False)
    seen: list[int] = []
    registry.on_load(lambda ep: seen.append(ep.in_flight))
    ep = Endpoint(id="m-1", deployment="m", runtime="openai", url="http://127.0.0.1:1",
                  dialect=get_adapter("openai").dialect_for(DeploymentConfig(name="m", runtime="openai")))
    registry.add(ep)
    registry.set_ready(ep, True)
    release = registry.acquire(ep)
    release()
    release()  # idempotent: one release is counted once
    assert every.loads == [1, 0] and seen == [1, 0]
    assert routable_only.loads == []
    assert routable_only.routable == every.routable and every.routable


def test_a_request_is_in_flight_from_started_to_finished_in_the_metrics() -> None:
    from inferplane.observability.metrics import GatewayMetrics, MetricsObserver

    metrics = GatewayMetrics(list)
    obs = Observers((MetricsObserver(metrics),), live=metrics.live)
    first, second = _rec(), _rec()
    first.model = second.model = "m"
    obs.started(first)
    obs.started(second)
    obs.finished(first, Outcome(200, 1.0))
    text = metrics.render().decode()
    assert 'inferplane_requests_in_flight{model="m"} 1.0' in text
    assert 'inferplane_requests_total{model="m",route="chat",status="200"} 1.0' in text
    obs.finished(second, Outcome(200, 1.0))
    assert 'inferplane_requests_in_flight{model="m"} 0.0' in metrics.render().decode()
