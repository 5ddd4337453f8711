from __future__ import annotations

from pathlib import Path

import pytest

from inferplane.config.models import (
    ConfigError,
    config_json_schema,
    env_overrides,
    load_config,
    parse_config,
)


def test_zero_replicas_is_valid_and_autoscale_starts_at_its_minimum() -> None:
    cfg = parse_config({"deployments": [
        {"name": "idle", "replicas": 0},
        {"name": "auto", "autoscale": {"min_replicas": 2, "max_replicas": 4}},
        {"name": "zero", "autoscale": {"min_replicas": 0, "max_replicas": 3}},
    ]})
    idle, auto, zero = cfg.deployments
    assert idle.replicas == 0 and idle.autoscale is None
    assert auto.replicas == 2  # not given: starts at min_replicas
    assert zero.replicas == 1  # min 0 still starts one, so the first request has no cold start
    assert zero.autoscale is not None and zero.autoscale.scale_to_zero_after_s == 300


def test_minimal_deployment_gets_documented_defaults() -> None:
    cfg = parse_config({"deployments": [{"name": "smollm2"}]})
    (d,) = cfg.deployments
    assert (d.runtime, d.model, d.replicas, d.max_concurrent_sequences, d.policy) == (
        "embedded", "smollm2", 1, 4, "prefix")
    assert (cfg.gateway.host, cfg.gateway.port) == ("127.0.0.1", 8000)


@pytest.mark.parametrize(("data", "message"), [
    ({}, "deployments: Field required"),
    ({"deployments": []}, "deployments: Tuple should have at least 1 item"),
    ({"deployments": [{"name": "a"}, {"name": "a"}]}, "'a' is used twice"),
    ({"deployments": [{"name": "a", "autoscale": {"min_replicas": 3, "max_replicas": 2}}]},
     "min_replicas (3) is above max_replicas (2)"),
    ({"deployments": [{"name": "a", "replicas": 5, "autoscale": {"max_replicas": 2}}]},
     "replicas (5) must lie within autoscale's min_replicas..max_replicas (1..2)"),
    ({"deployments": [{"name": "a", "autoscale": {"max_replicas": 2, "speed": 1}}]},
     "deployments.0.autoscale.speed: unknown field"),
    ({"deployments": [{"name": "a", "replicas": -1}]}, "deployments.0.replicas"),
    ({"deployments": [{"name": "a", "colour": "red"}]}, "deployments.0.colour: unknown field; known fields: api_key_env, autoscale, breaker,"),
    ({"deployments": [{"name": "a", "replica": 2}]}, "deployments.0.replica: unknown field; did you mean 'replicas'?"),
    ({"gateway": {"prot": 1}, "deployments": [{"name": "a"}]}, "gateway.prot: unknown field; did you mean 'port'?"),
    ({"deployments": [{"name": "bad name!"}]}, "deployments.0.name"),
    ({"deployments": [{"name": "a", "endpoints": [{"url": "localhost:80"}]}]}, "must start with http"),
    ({"gateway": {"port": 70000}, "deployments": [{"name": "a"}]}, "gateway.port"),
    ({"deployments": [{"name": "a", "policy": "random"}]}, "deployments.0.policy"),
    ({"deployments": [{"name": "a", "upstream_model": "b"}]}, "upstream_model applies to the servers listed"),
])
def test_invalid_configs_say_which_field_and_why(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    assert message in str(exc.value)


def test_endpoint_urls_are_normalized() -> None:
    cfg = parse_config({"deployments": [{"name": "a", "replicas": 0,
                                         "endpoints": [{"url": "http://127.0.0.1:8080/v1/"}]}]})
    assert cfg.deployments[0].endpoints[0].url == "http://127.0.0.1:8080"


def test_load_config_reads_yaml(tmp_path: Path) -> None:
    p = tmp_path / "d.yaml"
    p.write_text("gateway:\n  port: 9000\ndeployments:\n  - name: m\n    model: /x.gguf\n    replicas: 2\n")
    cfg = load_config(p)
    assert cfg.gateway.port == 9000 and cfg.deployments[0].replicas == 2


@pytest.mark.parametrize(("text", "message"), [
    ("deployments: [", "is not valid YAML"),
    ("- just\n- a list\n", "expected a mapping"),
])
def test_load_config_rejects_non_mappings(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "d.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(p)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")


def test_schema_documents_every_field_with_a_description() -> None:
    schema = config_json_schema()
    dep = schema["$defs"]["DeploymentConfig"]["properties"]
    assert "max_concurrent_sequences" in dep
    missing = [k for k, v in dep.items() if "description" not in v]
    assert not missing


def test_env_overrides_only_reads_inferplane_variables() -> None:
    env = {"INFERPLANE_PORT": "9001", "PORT": "1", "INFERPLANE_HOST": ""}
    assert env_overrides(env) == {"INFERPLANE_PORT": "9001"}


@pytest.mark.parametrize("data", [
    {"deployments": [{"name": "./notes.txt"}]},
    {"deployments": [{"name": "a", "replica": 2}]},
    {"deployments": [{"name": "a"}, {"name": "b", "replicas": -1}]},
])
def test_a_failing_deployment_is_not_echoed_by_a_tuple_length_line(data: dict) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    assert "Tuple should have at least" not in str(exc.value)
    assert "Value error," not in str(exc.value)
