"""`inferplane runtimes` tells which load signals each runtime gives the router: checked against the
recordings, and TensorRT-LLM gets the options YAML that turns its Prometheus metrics on."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferplane.config.models import parse_config
from inferplane.runtimes import Resources, adapter_names, get_adapter
from inferplane.runtimes.base import EndpointStats
from inferplane.runtimes.load_signals import LOAD_SIGNALS
from inferplane.runtimes.trtllm import PERF_METRICS_YAML

FIXTURES = Path(__file__).parents[2] / "fixtures"
# the recording each row's signals are read from (live where one exists)
METRICS = {
    "vllm": "vllm/live/metrics.txt", "max": "max/live/metrics.txt", "embedded": "embedded/live/metrics.txt",
    "llamacpp": "embedded/live/metrics.txt", "sglang": "sglang/metrics.txt", "lmdeploy": "lmdeploy/metrics.txt",
    "trtllm": "trtllm/metrics.txt", "tgi": "tgi/metrics.txt", "mlc": "mlc/metrics.txt",
}


def _filled(stats: EndpointStats) -> set[str]:
    out = {f for f in ("running", "waiting", "kv_cache_usage") if getattr(stats, f) is not None}
    if stats.prefix_cache_hits is not None and stats.prefix_cache_queries is not None:
        out.add("prefix_cache")
    if stats.prompt_tokens is not None and stats.generation_tokens is not None:
        out.add("tokens")
    return out


def test_every_runtime_says_what_it_gives_the_router() -> None:
    assert set(LOAD_SIGNALS) == set(adapter_names())


@pytest.mark.parametrize("runtime", sorted(METRICS))
def test_declared_signals_are_what_the_recorded_metrics_give(runtime: str) -> None:
    stats = get_adapter(runtime).parse_metrics((FIXTURES / METRICS[runtime]).read_text())
    assert _filled(stats) == set(LOAD_SIGNALS[runtime][0])


def _trtllm(**kw: object):
    d = {"name": "t", "runtime": "trtllm", "model": "/models/m", **kw}
    return parse_config({"deployments": [d]}).deployments[0]


def test_trtllm_without_a_yaml_gets_one_that_turns_prometheus_on() -> None:
    spec = get_adapter("trtllm").launch_spec(_trtllm(), 8000, Resources())
    argv = list(spec.argv)
    path = argv[argv.index("--extra_llm_api_options") + 1]
    assert spec.files == ((path, PERF_METRICS_YAML),)
    assert "return_perf_metrics: true" in PERF_METRICS_YAML
    assert spec.metrics_path == "/prometheus/metrics"


def test_trtllm_with_the_users_yaml_passes_it_unchanged() -> None:
    spec = get_adapter("trtllm").launch_spec(
        _trtllm(extra_args=["--extra_llm_api_options", "/etc/mine.yaml"]), 8000, Resources())
    assert spec.files == ()
    assert list(spec.argv).count("--extra_llm_api_options") == 1
    assert spec.argv[-1] == "/etc/mine.yaml"
