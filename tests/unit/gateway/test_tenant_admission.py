"""TenantAdmission: who may open /admin/*, scopes, and the limits' refusals (no sockets)."""

from __future__ import annotations

import asyncio

import pytest

from inferplane.config.tenants import TenantConfig
from inferplane.gateway.tenancy.admission import Refusal, TenantAdmission
from inferplane.gateway.tenancy.gcra import MemoryStore
from inferplane.gateway.tenancy.keys import KeyRing, hash_key
from inferplane.gateway.tenancy.limiter import Limiter
from inferplane.gateway.tenancy.observer import NOTE, TenantObserver
from inferplane.observability.observer import Outcome, RequestRecord, Usage
from inferplane.protocol.routes import Route, SurfaceName

TENANTS = [TenantConfig(name="t", key_sha256=hash_key("tk"), deployments=["a"], rpm_limit=1, tpm_limit=10_000)]


def _admission(*, admin: str | None, api_keys: tuple[str, ...] = ("plain",)) -> TenantAdmission:
    limiter = Limiter(MemoryStore(clock=lambda: 100.0))
    return TenantAdmission(KeyRing(TENANTS, api_keys, admin_key=admin), limiter, TenantObserver(limiter))


def _auth(key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}


@pytest.mark.parametrize(("admin", "key", "status"), [
    ("root", "root", None), ("root", "plain", 403), ("root", "tk", 403), ("root", None, 401), ("root", "x", 401),
    (None, "plain", None), (None, "tk", 403), (None, None, 401),
])
def test_who_opens_admin(admin: str | None, key: str | None, status: int | None) -> None:
    a = _admission(admin=admin)
    if status is None:
        a.check_admin(_auth(key))
        return
    with pytest.raises(Refusal) as exc:
        a.check_admin(_auth(key))
    assert exc.value.status == status


def test_the_admin_key_is_not_an_api_key_and_x_api_key_works() -> None:
    a = _admission(admin="root")
    with pytest.raises(Refusal) as exc:
        a.tenant(_auth("root"), ("authorization",))
    assert exc.value.status == 401
    assert a.tenant({"x-api-key": "tk"}, ("authorization", "x-api-key")).name == "t"
    anonymous = TenantAdmission(KeyRing(), None, TenantObserver(None))
    assert anonymous.tenant({}, ("authorization",)) is None  # no keys configured: anyone, anonymous


def test_scope_refuses_served_and_unknown_models_alike() -> None:
    a = _admission(admin=None)
    t = a.tenant(_auth("tk"), ("authorization",))
    a.check_scope(t, "a")
    messages = []
    for model in ("b", "nope", None):
        with pytest.raises(Refusal) as exc:
            a.check_scope(t, model)
        assert exc.value.status == 403
        messages.append(exc.value.message.replace(repr(model), "M").replace("'(none)'", "M"))
    assert len(set(messages)) == 1


def test_admission_refuses_with_headers_and_the_observer_settles() -> None:
    async def body() -> None:
        a = _admission(admin=None)
        t = a.tenant(_auth("tk"), ("authorization",))
        rec = RequestRecord("r1", SurfaceName.OPENAI, Route.CHAT, 0.0, 0.0, "/v1/chat/completions", tenant="t")
        headers = dict(await a.admit_limits(rec.notes, t, body_len=300, max_tokens=100))
        assert headers["x-ratelimit-remaining-requests"] == "0" and rec.notes[NOTE].tokens == 232
        with pytest.raises(Refusal) as exc:
            await a.admit_limits({}, t, body_len=300, max_tokens=100)
        assert exc.value.status == 429 and exc.value.code == "rate_limit_exceeded"
        assert a.observer.limited[("t", "requests")] == 1
        a.observer.finished(rec, Outcome(200, 1.0, usage=Usage(20, 30), endpoint_id="a-1"))
        assert a.observer.tokens[("t", "prompt")] == 20 and a.observer.requests[("t", 200)] == 1
        assert rec.notes[NOTE].settled
        # the bucket holds what was used (50 tokens = 0.3 s of a 10,000/min refill), not the 232 reserved
        assert a.limiter.store._tats["t:tpm"] == pytest.approx(100.0 + 50 * 60 / 10_000)  # type: ignore[attr-defined]

    asyncio.run(body())
