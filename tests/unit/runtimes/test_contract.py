"""One contract, every adapter: launch specs are pure and valid, probes and metrics map the recordings."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from inferplane.config.models import parse_config
from inferplane.protocol.sse import DONE, SSEDecoder
from inferplane.runtimes import Resources, adapter_names, get_adapter
from inferplane.runtimes.base import Capabilities, EndpointStats, LaunchError, LaunchSpec

FIXTURES = Path(__file__).parents[2] / "fixtures"
LAUNCHED = ("embedded", "vllm", "sglang", "max", "lmdeploy", "trtllm", "tgi", "llamacpp", "mlc", "ollama")
MODEL = {"embedded": "/m/smol.gguf", "llamacpp": "/m/smol.gguf", "ollama": "smollm2:135m"}
PORT_FLAG = {"lmdeploy": "--server-port"}

# Normalized stats each runtime's recorded /metrics must give (None: the runtime does not say).
EXPECTED_STATS = {
    "vllm": EndpointStats(3, 1, 0.12, 5376, 12450, "tokens", 12450, 8810),
    "sglang": EndpointStats(3, 1, 0.12, 5376, 12450, "tokens", 12450, 8810),
    "lmdeploy": EndpointStats(3, 1, 0.12, 5376, 12450, "tokens", 12450, 8810),
    "trtllm": EndpointStats(3, 1, 0.12, 5376, 12450, "tokens", 12450, 8810),
    "tgi": EndpointStats(3, 1, None, None, None, "tokens", 12450, 8810),
    "mlc": EndpointStats(None, None, None, None, None, "tokens", 12450, 8810),
    "max": EndpointStats(3, 1, 0.125, 5376, 12450, "tokens", 12450, 8810),
}


def _dep(runtime: str, **kw: object):
    d = {"name": "smol", "runtime": runtime, "model": MODEL.get(runtime, "/models/smollm2"), **kw}
    return parse_config({"deployments": [d]}).deployments[0]


def test_every_runtime_of_the_issue_is_registered() -> None:
    assert set(LAUNCHED) | {"openai"} == set(adapter_names())


@pytest.mark.parametrize("runtime", LAUNCHED)
def test_launch_spec_is_pure_and_carries_the_deployment(runtime: str) -> None:
    adapter = get_adapter(runtime)
    dep = _dep(runtime, max_concurrent_sequences=3, extra_args=["--extra-flag", "x"], env={"K": "v"})
    spec = adapter.launch_spec(dep, 8123, Resources(threads=2))
    assert isinstance(spec, LaunchSpec)
    assert spec == adapter.launch_spec(dep, 8123, Resources(threads=2))  # pure: same input, same spec
    assert all(isinstance(a, str) for a in spec.argv)
    assert spec.argv[-2:] == ("--extra-flag", "x")  # passed through verbatim, last
    assert spec.env["K"] == "v"
    where = " ".join(spec.argv) + " " + " ".join(f"{k}={v}" for k, v in spec.env.items())
    assert "8123" in where and "127.0.0.1" in where  # loopback, on the port it was given
    assert dep.model in where or runtime == "ollama"
    assert spec.probe.path.startswith("/")


@pytest.mark.parametrize("runtime", [r for r in LAUNCHED if r != "embedded"])
def test_executable_replaces_the_program(runtime: str) -> None:
    adapter = get_adapter(runtime)
    spec = adapter.launch_spec(_dep(runtime, executable="/opt/bin/server"), 9000, Resources())
    assert spec.argv[0] == "/opt/bin/server"
    default = adapter.launch_spec(_dep(runtime), 9000, Resources())
    assert default.argv[0] != "/opt/bin/server"


@pytest.mark.parametrize("runtime", [r for r in LAUNCHED if (FIXTURES / r / "launch.json").exists()])
def test_served_name_port_and_host_use_the_runtimes_recorded_flags(runtime: str) -> None:
    launch = json.loads((FIXTURES / runtime / "launch.json").read_text())
    spec = get_adapter(runtime).launch_spec(_dep(runtime), 8123, Resources())
    argv = list(spec.argv)
    if runtime == "ollama":
        assert spec.env["OLLAMA_HOST"] == "127.0.0.1:8123"
        return
    template = launch["argv_template"]
    port_flag = template[template.index("{port}") - 1]
    assert argv[argv.index(port_flag) + 1] == "8123"
    host_flag = template[template.index("{host}") - 1]
    assert argv[argv.index(host_flag) + 1] == "127.0.0.1"
    if "{served_name}" in template and runtime != "trtllm":
        name_flag = template[template.index("{served_name}") - 1]
        assert argv[argv.index(name_flag) + 1] == "smol"


@pytest.mark.parametrize("runtime", LAUNCHED)
def test_capabilities_are_data(runtime: str) -> None:
    caps = get_adapter(runtime).capabilities()
    assert isinstance(caps, Capabilities)
    assert caps.architectures and caps.weight_formats and caps.hardware and caps.max_choices >= 1


@pytest.mark.parametrize("runtime", [r for r in LAUNCHED if (FIXTURES / r / "health.json").exists()])
def test_probe_matches_the_recorded_health_semantics(runtime: str) -> None:
    health = json.loads((FIXTURES / runtime / "health.json").read_text())
    spec = get_adapter(runtime).launch_spec(_dep(runtime), 1, Resources())
    if runtime == "ollama":  # "/" answers before the model loads: the probe loads it with a real request
        assert (spec.probe.method, spec.probe.path) == ("POST", "/api/generate")
        assert orjson.loads(spec.probe.body or b"{}") == {"model": "smollm2:135m", "prompt": "", "stream": False}
    else:
        assert (spec.probe.method, spec.probe.path) == ("GET", health["path"])


@pytest.mark.parametrize("runtime", sorted(EXPECTED_STATS))
def test_parse_metrics_maps_the_recording(runtime: str) -> None:
    stats = get_adapter(runtime).parse_metrics((FIXTURES / runtime / "metrics.txt").read_text())
    assert stats == EXPECTED_STATS[runtime]
    assert get_adapter(runtime).parse_metrics("") == EndpointStats()


def _sse_text(stream: bytes) -> str:
    dec = SSEDecoder()
    out = []
    for payload in [*dec.feed(stream), *dec.flush()]:
        if payload == DONE:
            break
        for choice in orjson.loads(payload).get("choices", []):
            out.append((choice.get("delta") or {}).get("content") or "")
    return "".join(out)


@pytest.mark.parametrize("runtime", ["vllm", "sglang", "lmdeploy", "trtllm", "tgi", "mlc", "max"])
def test_dialect_round_trip_on_recorded_bodies(runtime: str) -> None:
    dialect = get_adapter(runtime).dialect_for(_dep(runtime))
    chat = (FIXTURES / runtime / "chat.json").read_bytes()
    raw = b'{"model":"smol","messages":[{"role":"user","content":"hi"}]}'
    if dialect.passthrough:
        assert dialect.stream("chat", "smol") is None
        return
    assert dialect.request("chat", orjson.loads(raw), raw) == ("/v1/chat/completions", raw)  # body untouched
    assert dialect.response("chat", "smol", 200, chat) == (200, chat)
    assert dialect.stream("chat", "smol") is None  # streams pass through byte for byte
    stream = (FIXTURES / runtime / "chat_stream.txt").read_bytes()
    assert _sse_text(stream) == "Hello! How can I help you today?"
    error = json.loads((FIXTURES / runtime / "error.json").read_text())
    status, body = dialect.response("chat", "smol", error["status"], orjson.dumps(error["body"]))
    err = orjson.loads(body)["error"]
    assert status == error["status"] and err["message"] and isinstance(err["type"], str)


@pytest.mark.parametrize(("runtime", "kw"), [
    ("trtllm", {"dtype": "bfloat16"}), ("trtllm", {"prefix_caching": False}),
    ("mlc", {"quantization": "q4f16_1"}), ("ollama", {"tensor_parallel_size": 2}),
    ("ollama", {"prefix_caching": False}), ("llamacpp", {"dtype": "float16"}),
    ("max", {"dtype": "bfloat16", "quantization": "q4_k"}), ("max", {"tensor_parallel_size": 2}),
])
def test_settings_a_runtime_cannot_honour_are_refused_with_a_fix(runtime: str, kw: dict) -> None:
    with pytest.raises(LaunchError, match="smol"):
        get_adapter(runtime).launch_spec(_dep(runtime, **kw), 1, Resources())


@pytest.mark.parametrize("runtime", LAUNCHED)
def test_availability_is_cheap_and_says_why(runtime: str) -> None:
    av = get_adapter(runtime).availability()
    assert av.reason
    assert get_adapter(runtime).availability_for(_dep(runtime, executable="/no/such/server")).usable is False


@pytest.mark.parametrize(("runtime", "module"), [("vllm", "vllm.entrypoints.openai.api_server"),
                                                 ("sglang", "sglang.launch_server")])
def test_a_python_executable_runs_the_runtimes_module(runtime: str, module: str) -> None:
    spec = get_adapter(runtime).launch_spec(_dep(runtime, executable="/venvs/x/bin/python3"), 1, Resources())
    assert spec.argv[:3] == ("/venvs/x/bin/python3", "-m", module)
