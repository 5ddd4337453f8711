"""Embeddings deployments and tool calling: the launch flags each runtime gets, and what the gateway
is told the deployment can honour."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferplane.config import DeploymentConfig
from inferplane.config.models import ConfigError, parse_config
from inferplane.models.store import ModelError, ModelStore
from inferplane.runtimes.base import Resources
from inferplane.runtimes.embedded import EmbeddedAdapter
from inferplane.runtimes.llamacpp import LlamacppAdapter
from inferplane.runtimes.vllm import VllmAdapter

TOOLS_TEMPLATE = Path(__file__).parents[2] / "fixtures" / "embedded" / "tools_chat_template.jinja"


def _argv(adapter, **kw) -> list[str]:
    d = DeploymentConfig(name="m", model=kw.pop("model", "/m/x.gguf"), **kw)
    return list(adapter.launch_spec(d, 9000, Resources(threads=1)).argv)


def test_embedded_embeddings_mode_and_pooling() -> None:
    argv = _argv(EmbeddedAdapter(), embeddings=True)
    assert "--embedding" in argv and "--pooling" not in argv  # the child picks the file's own, else mean
    argv = _argv(EmbeddedAdapter(), embeddings=True, embedding_pooling="cls")
    assert argv[argv.index("--pooling") + 1] == "cls"
    assert "--embedding" not in _argv(EmbeddedAdapter())


def test_llamacpp_flags() -> None:
    argv = _argv(LlamacppAdapter(), embeddings=True, embedding_pooling="mean")
    assert "--embeddings" in argv and argv[argv.index("--pooling") + 1] == "mean" and "--jinja" not in argv
    assert "--jinja" in _argv(LlamacppAdapter())


def test_vllm_pooling_runner_and_tool_parser() -> None:
    argv = _argv(VllmAdapter(), model="/m/hf", embeddings=True)
    assert argv[argv.index("--runner") + 1] == "pooling"
    argv = _argv(VllmAdapter(), model="/m/hf", tool_call_parser="hermes")
    assert "--enable-auto-tool-choice" in argv and argv[argv.index("--tool-call-parser") + 1] == "hermes"
    assert "--runner" not in argv


def test_vllm_tools_need_a_parser() -> None:
    plain = VllmAdapter().tool_support_for(DeploymentConfig(name="m", runtime="vllm", model="/m/hf"))
    assert not plain.tools and "tool_call_parser" in plain.reason
    assert VllmAdapter().tool_support_for(
        DeploymentConfig(name="m", runtime="vllm", model="/m/hf", tool_call_parser="hermes")).tools


@pytest.fixture(scope="module")
def smollm2() -> str:
    try:
        return str(ModelStore().resolve("smollm2", fetch=False))
    except ModelError as exc:  # scripts/test.sh pulls it; a bare checkout may not have it yet
        pytest.skip(f"smollm2 is not in the model cache: {exc}")


def test_smollm2s_template_cannot_render_tools(smollm2: str) -> None:
    support = EmbeddedAdapter().tool_support_for(DeploymentConfig(name="s", model=smollm2))
    assert not support.tools and "does not render tools" in support.reason


def test_a_tool_capable_template_passes_tools_but_not_a_forced_choice(smollm2: str) -> None:
    d = DeploymentConfig(name="s", model=smollm2, extra_args=("--chat-template-file", str(TOOLS_TEMPLATE)))
    support = EmbeddedAdapter().tool_support_for(d)
    assert support.tools and not support.forced_choice and "tool_choice" in support.forced_reason


def test_config_refuses_contradictions() -> None:
    with pytest.raises(ConfigError, match="embedding_pooling"):
        parse_config({"deployments": [{"name": "a", "embedding_pooling": "mean"}]})
    with pytest.raises(ConfigError, match="tool_call_parser"):
        parse_config({"deployments": [{"name": "a", "embeddings": True, "tool_call_parser": "hermes"}]})


def test_serve_refuses_embeddings_it_cannot_start(tmp_path: Path) -> None:
    from inferplane.server import ServeError, prepare_deployments

    cfg = parse_config({"deployments": [{"name": "e", "runtime": "sglang", "model": "/m/hf", "embeddings": True}]})
    with pytest.raises(ServeError, match="cannot start 'sglang' replicas for embeddings"):
        prepare_deployments(cfg, ModelStore(tmp_path), lambda _m: None)
    cfg = parse_config({"deployments": [{"name": "e", "runtime": "tgi", "model": "/m/hf", "embeddings": True}]})
    with pytest.raises(ServeError, match="does not serve OpenAI's /v1/embeddings"):
        prepare_deployments(cfg, ModelStore(tmp_path), lambda _m: None)
