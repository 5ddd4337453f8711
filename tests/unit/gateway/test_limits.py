"""Tenant keys, GCRA buckets and the limiter, with an explicit clock (tables)."""

from __future__ import annotations

import asyncio

import pytest

from inferplane.config.tenants import TenantConfig
from inferplane.gateway.tenancy.admission import key_from
from inferplane.gateway.tenancy.gcra import Bucket, MemoryStore, take
from inferplane.gateway.tenancy.keys import KeyRing, Tenant, hash_key, new_key
from inferplane.gateway.tenancy.limiter import Limiter, estimate_tokens, go_duration


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (0.012, "12ms"), (0.0001, "1ms"), (1, "1s"), (1.5, "1.5s"), (59.9991, "1m0s"),
    (60, "1m0s"), (360, "6m0s"), (90.25, "1m30.25s"), (3600 + 61, "1h1m1s"),
])
def test_durations_are_written_as_openai_writes_them(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_keys_hash_and_name_tenants() -> None:
    key, digest = new_key()
    assert digest == hash_key(key) and len(digest) == 64 and key.startswith("ipk-")
    assert hash_key("test") == "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    ring = KeyRing([TenantConfig(name="search", key_sha256=digest.upper(), deployments=["m"], rpm_limit=5)],
                   api_keys=["plain"], admin_key="root")
    assert ring.tenant(key).name == "search" and ring.tenant(key).may_call("m") and not ring.tenant(key).may_call("x")
    assert ring.tenant("plain").name == "default" and not ring.tenant("plain").limited
    assert ring.tenant("root") is None and ring.is_admin("root") and not ring.is_admin(key)
    assert ring.tenant("nope") is None and ring.required


@pytest.mark.parametrize(("authorization", "x_api_key", "key"), [
    ("Bearer abc", None, "abc"), ("bearer  abc ", None, "abc"), ("Basic abc", None, None),
    (None, "abc", "abc"), ("Bearer ", "xyz", "xyz"), (None, None, None), ("Bearer abc", "xyz", "abc"),
])
def test_the_key_comes_from_authorization_or_x_api_key(authorization, x_api_key, key) -> None:
    headers = {k: v for k, v in (("authorization", authorization), ("x-api-key", x_api_key)) if v is not None}
    assert key_from(headers, ("authorization", "x-api-key")) == key


@pytest.mark.parametrize(("tat", "cost", "now", "allowed", "remaining", "reset_s", "retry_s"), [
    (None, 1, 0.0, True, 59, 1.0, 0.0),        # a full bucket of 60/min: one taken, back in 1 s
    (59.0, 1, 0.0, True, 0, 60.0, 0.0),       # the 60th request fits exactly
    (60.0, 1, 0.0, False, 0, 60.0, 1.0),      # the 61st waits 1 s
    (60.0, 1, 1.0, True, 0, 60.0, 0.0),       # ...and fits one second later
    (10.0, 1, 20.0, True, 59, 1.0, 0.0),      # idle: the bucket refilled (no credit beyond full)
    (None, 61, 0.0, False, 60, 0.0, 0.0),     # larger than the bucket: never fits
])
def test_gcra_step(tat, cost, now, allowed, remaining, reset_s, retry_s) -> None:
    taken, _after = take([tat], [Bucket("k", 60, cost)], now)
    assert taken.allowed is allowed
    assert taken.states[0].remaining == remaining
    assert taken.states[0].reset_s == pytest.approx(reset_s)
    assert taken.retry_after_s == pytest.approx(retry_s)
    assert (taken.too_large == 0) is (cost > 60)


def test_buckets_are_taken_all_or_none() -> None:
    store = MemoryStore(clock=Clock())
    rpm, tpm = Bucket("rpm", 10, 1), Bucket("tpm", 100, 60)
    assert store.take_now([rpm, tpm]).allowed
    refused = store.take_now([rpm, tpm])  # tokens do not fit: requests are not taken either
    assert not refused.allowed and refused.states[0].remaining == 9 and refused.states[1].remaining == 40
    assert store.take_now([rpm, Bucket("tpm", 100, 40)]).allowed


def _limiter(clock: Clock, **kw) -> Limiter:
    return Limiter(MemoryStore(clock=clock), **kw)


def test_rpm_limit_with_headers_on_admitted_and_refused_requests() -> None:
    async def body() -> None:
        clock = Clock()
        lim = _limiter(clock)
        t = Tenant("t", None, rpm_limit=2)
        v1 = await lim.admit(t, body_len=100, max_tokens=None)
        assert v1.reservation is not None
        assert dict(v1.headers) == {"x-ratelimit-limit-requests": "2", "x-ratelimit-remaining-requests": "1",
                                    "x-ratelimit-reset-requests": "30s"}
        await lim.admit(t, body_len=100, max_tokens=None)
        v3 = await lim.admit(t, body_len=100, max_tokens=None)
        assert v3.reservation is None and v3.status == 429 and v3.code == "rate_limit_exceeded"
        h = dict(v3.headers)
        assert h["Retry-After"] == "30" and h["retry-after-ms"] == "30000" and h["x-ratelimit-remaining-requests"] == "0"
        assert "requests per min (RPM): limit 2" in v3.message
        clock.t += 30
        assert (await lim.admit(t, body_len=100, max_tokens=None)).reservation is not None

    asyncio.run(body())


def test_tokens_are_reserved_then_settled_to_what_was_used() -> None:
    async def body() -> None:
        clock = Clock()
        lim = _limiter(clock, reserved_completion_tokens=100)
        t = Tenant("t", None, tpm_limit=1000)
        est = estimate_tokens(300, 200, 1, 100)
        assert est == 300 // 3 + 32 + 200
        v = await lim.admit(t, body_len=300, max_tokens=200)
        assert v.reservation.tokens == est and dict(v.headers)["x-ratelimit-remaining-tokens"] == str(1000 - est)
        # while it runs, its estimate stands against the limit
        v2 = await lim.admit(t, body_len=300, max_tokens=200)
        v3 = await lim.admit(t, body_len=300, max_tokens=200)
        assert v2.reservation and v3.reservation
        assert (await lim.admit(t, body_len=300, max_tokens=200)).status == 429  # 4 x 332 > 1000
        for r in (v.reservation, v2.reservation, v3.reservation):
            lim.settle(r, 50)  # each used 50: the rest comes back at once
        lim.settle(v.reservation, 50)  # settling twice changes nothing
        v4 = await lim.admit(t, body_len=300, max_tokens=200)
        assert v4.reservation is not None
        assert int(dict(v4.headers)["x-ratelimit-remaining-tokens"]) == 1000 - 150 - est
        lim.settle(v4.reservation, None)  # usage unknown: the estimate stands
        assert int(dict((await lim.admit(t, body_len=3, max_tokens=1)).headers)["x-ratelimit-remaining-tokens"]) \
            == 1000 - 150 - est - estimate_tokens(3, 1, 1, 100)

    asyncio.run(body())


def test_a_request_larger_than_the_token_limit_is_refused_as_too_large() -> None:
    async def body() -> None:
        lim = _limiter(Clock())
        v = await lim.admit(Tenant("t", None, tpm_limit=100), body_len=30, max_tokens=500)
        assert v.status == 429 and v.code == "request_too_large" and "limit 100, requested" in v.message

    asyncio.run(body())


def test_max_concurrent_gives_back_what_the_rate_buckets_took() -> None:
    async def body() -> None:
        lim = _limiter(Clock())
        t = Tenant("t", None, rpm_limit=10, max_concurrent=1)
        v1 = await lim.admit(t, body_len=10, max_tokens=1)
        v2 = await lim.admit(t, body_len=10, max_tokens=1)
        assert v1.reservation and v2.status == 429 and "max_concurrent" in v2.message
        assert dict(v2.headers)["x-ratelimit-remaining-requests"] == "8"  # as seen when it was taken...
        lim.settle(v1.reservation, None)
        v3 = await lim.admit(t, body_len=10, max_tokens=1)
        assert dict(v3.headers)["x-ratelimit-remaining-requests"] == "8"  # ...and given back after
        assert lim.in_progress["t"] == 1

    asyncio.run(body())


class _DownStore:
    """A store that cannot be reached (as Redis when it is down)."""

    async def take(self, buckets):  # type: ignore[no-untyped-def]
        from inferplane.gateway.tenancy.gcra import StoreUnavailable
        raise StoreUnavailable("limits store redis://127.0.0.1:1: connection refused")

    enter = adjust = leave = take

    async def close(self) -> None:
        return None


@pytest.mark.parametrize(("failure", "status"), [("open", 200), ("closed", 503)])
def test_store_outage_follows_the_policy(failure: str, status: int) -> None:
    async def body() -> None:
        lim = Limiter(_DownStore(), failure=failure)  # type: ignore[arg-type]
        v = await lim.admit(Tenant("t", None, rpm_limit=1), body_len=10, max_tokens=1)
        assert v.status == status and lim.store_failures == 1
        if failure == "closed":
            assert v.code == "limits_unavailable" and v.reservation is None

    asyncio.run(body())
