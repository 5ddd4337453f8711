"""Which TLS settings and key each endpoint gets, and what the pooled client puts on the wire."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest

from inferplane.config.models import parse_config
from inferplane.config.upstreams import Secret
from inferplane.gateway.upstream import ConnectFailed, TlsFailed, UpstreamPool
from inferplane.runtimes.access import (
    PLAIN,
    UpstreamAccess,
    build_access,
    describe_tls_error,
    tls_context,
)
from inferplane.runtimes.registry import get_adapter
from tls_certs import Certs, make_certs

SECRET = "sk-fleet-Wm3"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def _table(doc: dict, env: dict[str, str]):  # type: ignore[no-untyped-def]
    cfg = parse_config(doc, environ=env)
    keys = {name: Secret(value) for name, value in env.items()}
    return build_access(cfg.gateway, cfg.deployments, keys,
                        {d.name: get_adapter(d.runtime).dialect_for(d) for d in cfg.deployments})


def test_each_endpoint_gets_its_ca_and_its_key_in_the_runtimes_header(certs: Certs) -> None:
    table = _table({"gateway": {"upstream_ca_file": str(certs.other_ca)}, "deployments": [
        {"name": "v", "runtime": "vllm", "replicas": 0, "api_key_env": "FLEET", "endpoints": [
            {"url": "https://a.example:8443", "ca_file": str(certs.ca)},
            {"url": "https://b.example", "api_key_env": "B_KEY"},
            {"url": "http://10.0.0.9:8000"},
        ]}]}, {"FLEET": SECRET, "B_KEY": "sk-b"})
    a, b, c = table("https://a.example:8443"), table("https://b.example"), table("http://10.0.0.9:8000")
    assert a.header == ("Authorization", f"Bearer {SECRET}") and a.key_source == "$FLEET"
    assert b.header == ("Authorization", "Bearer sk-b") and b.key_source == "$B_KEY"
    assert c.header == ("Authorization", f"Bearer {SECRET}") and c.ssl_context is None
    assert a.tls_note == f"ca_file {certs.ca}" and b.tls_note == f"ca_file {certs.other_ca}"  # the gateway's
    for acc in (a, b):
        assert acc.ssl_context is not None
        assert acc.ssl_context.verify_mode is ssl.CERT_REQUIRED and acc.ssl_context.check_hostname
    assert SECRET not in repr(a) and SECRET not in str(a.describe())
    assert a.describe() == {"api_key_from": "$FLEET", "tls": f"ca_file {certs.ca}"}
    # a URL the file does not list (a launched replica) gets no key, and the gateway's CA bundle
    other = table("https://c.example")
    assert other.header is None and other.ssl_context is not None


def test_tls_verify_false_turns_checks_off_for_that_endpoint_only() -> None:
    table = _table({"deployments": [{"name": "o", "runtime": "openai", "replicas": 0, "endpoints": [
        {"url": "https://lab.example", "tls_verify": False}, {"url": "https://prod.example"}]}]}, {})
    lab, prod = table("https://lab.example").ssl_context, table("https://prod.example").ssl_context
    assert lab is not None and lab.verify_mode is ssl.CERT_NONE and not lab.check_hostname
    assert prod is not None and prod.verify_mode is ssl.CERT_REQUIRED


def test_a_key_for_a_runtime_that_takes_none_is_refused() -> None:
    with pytest.raises(ValueError, match="runtime 'ollama' takes no API key"):
        _table({"deployments": [{"name": "o", "runtime": "ollama", "model": "qwen3:0.6b", "replicas": 0,
                                 "endpoints": [{"url": "http://h:11434", "api_key_env": "K"}]}]}, {"K": "k"})


def test_only_ollama_goes_without_a_key_header() -> None:
    from inferplane.runtimes.registry import adapter_names

    for name in adapter_names():
        dialect = get_adapter(name).dialect
        expected = None if name == "ollama" else ("Authorization", "Bearer ")
        assert dialect.api_key_header == expected, name


def test_a_reload_tells_which_urls_changed() -> None:
    doc = {"deployments": [{"name": "v", "runtime": "vllm", "replicas": 0, "endpoints": [
        {"url": "http://a:1", "api_key_env": "K"}, {"url": "http://b:1"}]}]}
    before = _table(doc, {"K": "one"})
    assert before.changed(_table(doc, {"K": "one"})) == set()
    assert before.changed(_table(doc, {"K": "two"})) == {"http://a:1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return int(s.getsockname()[1])


async def _capture(ssl_ctx: ssl.SSLContext | None = None) -> tuple[asyncio.Server, list[bytes]]:
    """A server that records each request head and answers a tiny 200."""
    heads: list[bytes] = []

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(ln.split(b":")[1] for ln in head.split(b"\r\n")
                                  if ln.lower().startswith(b"content-length")))
                await reader.readexactly(length)
                heads.append(head)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    # 127.0.0.2 too: a loopback address the test certificate does not name
    server = await asyncio.start_server(on_conn, ["127.0.0.1", "127.0.0.2"], _free_port(), ssl=ssl_ctx)
    return server, heads


def test_the_key_goes_on_every_request_head_and_plain_heads_stay_as_they_were() -> None:
    asyncio.run(_test_the_key_goes_on_every_request_head_and_plain_heads_stay_as_they_were())


async def _test_the_key_goes_on_every_request_head_and_plain_heads_stay_as_they_were() -> None:
    server, heads = await _capture()
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    keyed = UpstreamAccess(None, ("Authorization", f"Bearer {SECRET}"), "$K")
    for access, want in ((keyed, f"Authorization: Bearer {SECRET}".encode()), (PLAIN, None)):
        pool = UpstreamPool(connect_timeout_s=2, access=lambda _u, a=access: a)
        for _ in range(2):  # the second request reuses the kept-alive connection
            resp = await pool.post(url, "/v1/chat/completions", b"{}")
            assert await resp.headers(5) == 200 and await resp.read() == b"{}"
            resp.release()
        pool.close()
        got = heads[-2:]
        for head in got:
            lines = head.split(b"\r\n")
            assert lines[0] == b"POST /v1/chat/completions HTTP/1.1"
            assert lines[1].startswith(b"Host: 127.0.0.1:")
            if want is None:
                assert not any(ln.lower().startswith(b"authorization") for ln in lines)
                assert lines[2] == b"Content-Type: application/json"
            else:
                assert lines[2] == want and sum(ln.lower().startswith(b"authorization") for ln in lines) == 1
    server.close()


def test_https_verifies_the_certificate_and_the_host_name(certs: Certs, tmp_path: Path) -> None:
    asyncio.run(_test_https_verifies_the_certificate_and_the_host_name(certs, tmp_path))


async def _test_https_verifies_the_certificate_and_the_host_name(certs: Certs, tmp_path: Path) -> None:
    sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    sctx.load_cert_chain(certs.cert, certs.key)
    server, heads = await _capture(sctx)
    port = server.sockets[0].getsockname()[1]
    trusted = UpstreamAccess(tls_context(certs.ca))
    pool = UpstreamPool(connect_timeout_s=5, access=lambda _u: trusted)
    resp = await pool.post(f"https://127.0.0.1:{port}", "/v1/completions", b"{}")
    assert await resp.headers(5) == 200
    resp.close()
    # the certificate names 127.0.0.1 and localhost; another name for the same address fails
    with pytest.raises(TlsFailed, match=r"certificate verify failed: IP address mismatch.*use the host name or addr"):
        await pool.post(f"https://127.0.0.2:{port}", "/v1/completions", b"{}")
    untrusted = UpstreamPool(connect_timeout_s=5)  # the system's CAs do not know the test CA
    with pytest.raises(TlsFailed, match="certificate verify failed: unable to get local issuer certificate"):
        await untrusted.post(f"https://127.0.0.1:{port}", "/v1/completions", b"{}")
    assert await untrusted.probe(f"https://127.0.0.1:{port}", "GET", "/health", None, 2) is False
    pool.close()
    untrusted.close()
    server.close()
    assert len(heads) == 1


def test_a_scheme_the_pool_cannot_speak_is_a_connect_failure_not_a_crash() -> None:
    asyncio.run(_test_a_scheme_the_pool_cannot_speak_is_a_connect_failure_not_a_crash())


async def _test_a_scheme_the_pool_cannot_speak_is_a_connect_failure_not_a_crash() -> None:
    pool = UpstreamPool(connect_timeout_s=1)
    with pytest.raises(ConnectFailed, match="only http:// and https://"):
        await pool.post("ftp://h:21", "/v1/completions", b"{}")
    assert await pool.probe("ftp://h:21", "GET", "/health", None, 1) is False


def test_describe_tls_error_says_what_failed() -> None:
    err = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    err.verify_message, err.verify_code = "self-signed certificate", 18  # type: ignore[attr-defined]
    outer = ConnectionError("wrapped")
    outer.__cause__ = err
    assert describe_tls_error(outer) == ("certificate verify failed: self-signed certificate (set the endpoint's "
                                         "ca_file, or gateway.upstream_ca_file, to the CA that signed its certificate)")
    err.verify_message, err.verify_code = "certificate has expired", 10  # type: ignore[attr-defined]
    assert describe_tls_error(err) == "certificate verify failed: certificate has expired (the endpoint needs a " \
                                      "renewed certificate)"
    assert describe_tls_error(ConnectionRefusedError(111, "refused")) is None
