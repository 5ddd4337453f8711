from __future__ import annotations

import pytest

from inferplane.config.models import parse_config
from inferplane.runtimes import Resources, adapter_names, get_adapter
from inferplane.runtimes.base import LaunchError
from inferplane.runtimes.llamacpp_metrics import parse_llamacpp_metrics
from inferplane.runtimes.prometheus import parse_prometheus

# Captured from the xllamacpp build in use (GET /metrics after one request), trimmed.
LLAMACPP_METRICS = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed, excluding cached tokens
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 31
# TYPE llamacpp:prompt_tokens_cached_total counter
llamacpp:prompt_tokens_cached_total 9
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 20
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 1
"""


def _dep(**kw):
    return parse_config({"deployments": [{"name": "smol", "model": "/m/x.gguf", **kw}]}).deployments[0]


def test_launch_spec_is_the_embedded_child_with_slots_context_and_threads() -> None:
    spec = get_adapter("embedded").launch_spec(_dep(max_concurrent_sequences=3, context_length_tokens=1024),
                                               8123, Resources(threads=2))
    argv = list(spec.argv)
    assert argv[1:3] == ["-m", "inferplane.runtimes.embedded_main"]
    assert argv[argv.index("--model") + 1] == "/m/x.gguf"
    assert argv[argv.index("--alias") + 1] == "smol"
    assert argv[argv.index("--port") + 1] == "8123"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--parallel") + 1] == "3"
    assert argv[argv.index("--ctx-size") + 1] == str(3 * 1024)  # llama.cpp's n_ctx is shared by the slots
    assert argv[argv.index("--threads") + 1] == "2"
    assert "--no-cache-prompt" not in argv
    assert spec.probe.path == "/health"


def test_prefix_caching_off_and_extra_args_pass_through() -> None:
    spec = get_adapter("embedded").launch_spec(_dep(prefix_caching=False, extra_args=["--batch-size", "64"]),
                                               1, Resources())
    assert "--no-cache-prompt" in spec.argv and spec.argv[-2:] == ("--batch-size", "64")
    assert "--threads" not in spec.argv


@pytest.mark.parametrize(("kw", "message"), [
    ({"model": "org/some-hf-model"}, "serves GGUF files"),
    ({"tensor_parallel_size": 2}, "CPU-only"),
])
def test_launch_errors_say_what_to_change(kw: dict, message: str) -> None:
    with pytest.raises(LaunchError, match=message):
        get_adapter("embedded").launch_spec(_dep(**kw), 1, Resources())


def test_llamacpp_metrics_map_onto_normalized_stats() -> None:
    s = get_adapter("embedded").parse_metrics(LLAMACPP_METRICS)
    assert (s.running, s.waiting) == (2, 1)
    assert s.prompt_tokens == 40  # llama.cpp counts cached prompt tokens separately
    assert (s.prefix_cache_hits, s.prefix_cache_queries) == (9, 40)
    assert s.generation_tokens == 20
    assert s.kv_cache_usage is None


def test_prometheus_parser_sums_label_sets_and_skips_comments() -> None:
    text = 'a{x="1"} 2\na{x="2"} 3.5\n# HELP a x\nb 1e3\nc NaN\nd{le="+Inf"} 4\n'
    assert parse_prometheus(text) == {"a": 5.5, "b": 1000.0, "d": 4.0}
    assert parse_llamacpp_metrics("").running is None


def test_registry_names() -> None:
    assert {"embedded", "openai"} <= set(adapter_names())
    with pytest.raises(KeyError, match="unknown runtime 'nope'"):
        get_adapter("nope")


def test_gpus_are_granted_disjointly_and_a_shortage_says_how_many() -> None:
    from inferplane.placement.gpus import GpuShortage, assign_gpus

    assert assign_gpus([0, 1, 2, 3], [("a", 2), ("b", 0), ("c", 1)]) == [(0, 1), (), (2,)]
    with pytest.raises(GpuShortage, match="need 3 GPU"):
        assign_gpus([0, 1], [("a", 2), ("b", 1)])


def test_max_replicas_get_their_own_metrics_port_and_keep_the_serve_subcommand() -> None:
    adapter = get_adapter("max")
    dep = parse_config({"deployments": [{"name": "m", "runtime": "max", "model": "/hf",
                                         "executable": "/venv/bin/max"}]}).deployments[0]
    a = adapter.launch_spec(dep, 9000, Resources(aux_port=9100))
    b = adapter.launch_spec(dep, 9001, Resources(aux_port=9101))
    assert a.argv[:2] == ("/venv/bin/max", "serve")
    assert (a.metrics_port, b.metrics_port) == (9100, 9101)
    assert a.env["MAX_SERVE_METRICS_ENDPOINT_PORT"] == "9100"
    assert a.env["OTEL_SDK_DISABLED"] == "true" and "MAX_SERVE_DISABLE_TELEMETRY" not in a.env


def test_the_generic_openai_adapter_recognises_each_runtime_by_its_metric_names() -> None:
    from pathlib import Path

    fixtures = Path(__file__).parents[2] / "fixtures"
    generic = get_adapter("openai")
    for runtime in ("vllm", "sglang", "lmdeploy", "trtllm", "tgi"):
        text = (fixtures / runtime / "metrics.txt").read_text()
        assert generic.parse_metrics(text) == get_adapter(runtime).parse_metrics(text), runtime
    assert generic.parse_metrics(LLAMACPP_METRICS).running == 2
    assert generic.parse_metrics("some_other_metric 1\n").running is None
