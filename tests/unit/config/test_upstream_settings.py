"""The deployment file's upstream keys and TLS settings: what is refused at load, and how it is said."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inferplane.config.models import ConfigError, parse_config
from inferplane.config.upstreams import Secret, read_api_key
from tls_certs import Certs, make_certs

SECRET = "sk-live-4f9Qx2"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def _one(endpoint: dict[str, Any], **dep: Any) -> dict[str, Any]:
    return {"deployments": [{"name": "remote", "runtime": "openai", "replicas": 0, "endpoints": [endpoint], **dep}]}


def _error(data: dict[str, Any], environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(data, environ=environ or {})
    return str(err.value)


@pytest.mark.parametrize("field", ["api_key", "token", "Authorization"])
def test_a_key_written_into_the_file_is_refused_with_a_pointer_to_api_key_env(field: str) -> None:
    msg = _error(_one({"url": "https://h.example:8443", field: SECRET}))
    assert "deployments.0.endpoints.0:" in msg
    assert "api_key_env" in msg and "environment variable" in msg
    assert SECRET not in msg  # the error never repeats the key


def test_a_key_at_deployment_level_is_refused_too() -> None:
    msg = _error({"deployments": [{"name": "a", "api_key": SECRET}]})
    assert "deployments.0:" in msg and "api_key_env" in msg and SECRET not in msg


def test_a_key_pasted_into_api_key_env_is_not_taken_for_a_variable_name() -> None:
    msg = _error(_one({"url": "https://h.example", "api_key_env": SECRET}))
    assert "deployments.0.endpoints.0.api_key_env: api_key_env is the NAME of an environment variable" in msg
    assert SECRET not in msg


def test_a_variable_that_is_not_set_is_named_with_its_setting() -> None:
    data = _one({"url": "https://h.example", "api_key_env": "REMOTE_KEY"})
    assert "deployments.0.endpoints.0.api_key_env: environment variable REMOTE_KEY is not set" in _error(data)
    assert "is not set" in _error(data, {"REMOTE_KEY": "   "})  # blank counts as unset
    bad = _error(data, {"REMOTE_KEY": "sk-1\r\nX-Injected: yes"})  # no header injection through the key
    assert "holds characters an HTTP header cannot carry" in bad and "X-Injected" not in bad
    cfg = parse_config(data, environ={"REMOTE_KEY": SECRET})
    assert cfg.deployments[0].endpoints[0].api_key_env == "REMOTE_KEY"
    assert SECRET not in repr(cfg)  # the config holds the name, never the key


def test_the_deployment_wide_variable_is_checked_when_it_has_endpoints() -> None:
    data = _one({"url": "http://10.0.0.5:8000"}, api_key_env="FLEET_KEY")
    assert "deployments.0.api_key_env: environment variable FLEET_KEY is not set" in _error(data)
    parse_config(data, environ={"FLEET_KEY": "k"})


def test_credentials_in_the_url_are_refused() -> None:
    msg = _error(_one({"url": f"https://user:{SECRET}@h.example"}))
    assert "must not carry credentials" in msg and "api_key_env" in msg


def test_tls_settings_on_a_plain_http_url_are_refused() -> None:
    assert "ca_file applies to https:// endpoints" in _error(_one({"url": "http://h", "ca_file": "/etc/ca.pem"}))
    assert "tls_verify applies to https:// endpoints" in _error(_one({"url": "http://h", "tls_verify": False}))


def test_ca_bundles_that_cannot_be_used_are_refused_at_load(tmp_path: Path, certs: Certs) -> None:
    missing = tmp_path / "nope.pem"
    assert f"deployments.0.endpoints.0.ca_file: CA bundle {missing} does not exist" in \
        _error(_one({"url": "https://h", "ca_file": str(missing)}))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    assert f"{junk} is not a PEM CA bundle" in _error(_one({"url": "https://h", "ca_file": str(junk)}))
    msg = _error({"gateway": {"upstream_ca_file": str(missing)}, "deployments": [{"name": "a"}]})
    assert "gateway.upstream_ca_file: CA bundle" in msg
    cfg = parse_config(_one({"url": "https://h", "ca_file": str(certs.ca)}), environ={})
    assert cfg.deployments[0].endpoints[0].tls_verify is True  # verification is on by default


def test_a_listener_certificate_is_checked_at_load(tmp_path: Path, certs: Certs) -> None:
    def tls(cert: Path, key: Path) -> dict[str, Any]:
        return {"gateway": {"tls": {"cert_file": str(cert), "key_file": str(key)}}, "deployments": [{"name": "a"}]}

    assert "gateway.tls.cert_file:" in _error(tls(tmp_path / "none.pem", certs.key))
    assert "gateway.tls.key_file:" in _error(tls(certs.cert, tmp_path / "none.key"))
    msg = _error(tls(certs.cert, certs.ca))  # a certificate where its key should be
    assert "gateway.tls: cannot load the certificate" in msg and "matching the certificate" in msg
    parse_config(tls(certs.cert, certs.key), environ={})


def test_a_secret_never_prints() -> None:
    key = read_api_key("K", {"K": f" {SECRET}\n"})
    assert isinstance(key, Secret) and key.reveal() == SECRET
    assert SECRET not in repr(key) and SECRET not in str(key) and SECRET not in f"{key}"
    assert read_api_key("K", {}) is None
