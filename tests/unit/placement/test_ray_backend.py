"""The Ray backend's pure parts: actor options from a deployment, and the error without Ray."""

from __future__ import annotations

import builtins
import sys
from pathlib import Path
from typing import Any

import pytest

from inferplane.config.models import parse_config
from inferplane.placement.backend import PlacementError, ReplicaSpec
from inferplane.placement.ray_backend import RayBackend, import_ray
from inferplane.runtimes.base import Resources


class FakeRay:
    """Just what RayBackend's constructor asks of the ray module."""

    def __init__(self, gpus: float = 0) -> None:
        self.gpus = gpus

    def remote(self, cls: type) -> type:
        return cls

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": 8.0, "GPU": self.gpus} if self.gpus else {"CPU": 8.0}


def spec(**fields: Any) -> ReplicaSpec:
    doc = {"placement": {"backend": "ray"}, "deployments": [{"name": "m", "model": "x.gguf", **fields}]}
    (dep,) = parse_config(doc).deployments
    return ReplicaSpec("m-1", dep, Resources(threads=dep.threads), 30.0)


def backend(gpus: float = 0) -> RayBackend:
    cfg = parse_config({"placement": {"backend": "ray"}, "deployments": [{"name": "m"}]}).placement
    return RayBackend(FakeRay(gpus), cfg, log_dir=Path("/tmp"), started_cluster=False)


def test_replicas_spread_by_default_and_ask_for_their_threads_as_cpus() -> None:
    o = backend().options(spec(threads=3))
    assert o["scheduling_strategy"] == "SPREAD" and o["num_cpus"] == 3.0 and o["num_gpus"] == 0.0
    assert o["max_restarts"] == 0, "a dead replica is the controller's to replace, not Ray's to restart"
    assert "label_selector" not in o and "memory" not in o


def test_pack_labels_memory_and_custom_resources_become_ray_options() -> None:
    o = backend().options(spec(placement={"strategy": "pack", "node_labels": {"region": "eu", "accelerator": "A100"},
                                          "memory_bytes": 2_000_000_000, "resources": {"accelerator_type:A100": 0.001}}))
    assert o["scheduling_strategy"] == "DEFAULT"
    assert o["label_selector"] == {"region": "eu", "accelerator": "A100"}
    assert o["memory"] == 2_000_000_000 and o["resources"] == {"accelerator_type:A100": 0.001}


def test_a_gpu_runtime_asks_for_tensor_parallel_size_gpus_on_a_cluster_that_has_gpus() -> None:
    s = spec(runtime="vllm", model="org/model", tensor_parallel_size=2)
    assert backend(gpus=8).options(s)["num_gpus"] == 2.0
    assert backend(gpus=0).options(s)["num_gpus"] == 0.0, "a CPU cluster: the CPU build runs"
    assert "2 GPU" in backend(gpus=8).describe_needs(s)


def test_without_ray_installed_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = builtins.__import__

    def no_ray(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "ray", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(PlacementError, match=r"pip install 'inferplane\[ray\]'"):
        import_ray()


def test_placement_config_is_validated_with_messages_that_say_what_to_write() -> None:
    from inferplane.config.models import ConfigError

    with pytest.raises(ConfigError, match="address must be auto, local, ray://"):
        parse_config({"placement": {"backend": "ray", "address": "somewhere"}, "deployments": [{"name": "m"}]})
    with pytest.raises(ConfigError, match="strategy"):
        parse_config({"deployments": [{"name": "m", "placement": {"strategy": "scatter"}}]})
    with pytest.raises(ConfigError, match="follow must be"):
        parse_config({"placement": {"follow": "primary:8000"}, "deployments": [{"name": "m"}]})
    cfg = parse_config({"placement": {"backend": "ray", "address": "ray://head:10001"}, "deployments": [{"name": "m"}]})
    assert cfg.placement.address == "ray://head:10001" and cfg.deployments[0].placement.strategy == "spread"
