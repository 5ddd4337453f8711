"""Which runtimes can serve this model on this machine, and for the others, why not.

Pure: ``check(models, hardware, runtimes)`` takes the model's copies (the same model in one
or more weight formats, e.g. a GGUF file and an HF folder), the ``Hardware`` and each
runtime's ``Capabilities`` + ``Availability`` and returns one ``Verdict`` per runtime.
Checks, in order, each adding a concrete reason when it fails:

1. hardware: one of the runtime's device kinds is present ("TensorRT-LLM needs an NVIDIA GPU");
2. weights: a copy in a format the runtime loads on that device ("MLC-LLM needs its compiled
   weights"); then architecture and quantization;
3. memory: weights at the dtype the runtime would load them, plus headroom, fit in the
   device's memory ("weights do not fit in GPU memory at fp16 (need ~151 GiB, have 80 GiB)");
4. install: the runtime's ``Availability`` ("not installed: pip install ...").

A runtime with a GPU kind and "cpu" is tried on the GPU first, then on the CPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from inferplane.choose.hardware import GiB, Hardware
from inferplane.choose.model_info import ModelInfo
from inferplane.runtimes.base import Availability, Capabilities

__all__ = ["LABELS", "RuntimeFacts", "Verdict", "check", "runtime_label"]

LABELS: dict[str, str] = {
    "embedded": "embedded llama.cpp", "llamacpp": "llama.cpp server", "vllm": "vLLM", "sglang": "SGLang",
    "max": "MAX", "lmdeploy": "LMDeploy", "trtllm": "TensorRT-LLM", "tgi": "TGI", "mlc": "MLC-LLM",
    "ollama": "Ollama", "openai": "existing OpenAI endpoint",
}  # fmt: skip
_KIND_LABELS = {"nvidia": "an NVIDIA GPU", "amd": "an AMD GPU", "apple": "an Apple GPU", "intel-gpu": "an Intel GPU",
                "ascend": "an Ascend NPU", "tpu": "a TPU", "vulkan": "a Vulkan GPU", "gaudi": "a Gaudi accelerator",
                "cpu": "a CPU"}  # fmt: skip
_UNQUANTIZED = frozenset({"f32", "f16", "bf16", "float32", "float16", "bfloat16"})
_HEADROOM = 1.2
"""Weights x this, for KV cache and activations (a floor: long contexts need more)."""
_RUNTIME_OVERHEAD: dict[tuple[str, str], int] = {("vllm", "cpu"): 3 * GiB, ("max", "cpu"): 2 * GiB}
"""Fixed memory beyond the weights, measured (docs/runtimes-on-cpu.md: vLLM-CPU ~3.4 GiB RSS for 0.5 GiB)."""
_FORMATS_NOT_ON_DEVICE: dict[tuple[str, str], frozenset[str]] = {
    ("vllm", "cpu"): frozenset({"gguf"}),
    ("max", "cpu"): frozenset({"gguf"}),
}
"""Weight formats a runtime lists but cannot load on that device (measured on this project's CPU box)."""
_CPU_DTYPE = "float32"
"""HF weights on CPU run as float32 (vLLM-CPU and MAX recipes: bf16 on AVX2 is slow or wrong)."""


def runtime_label(name: str) -> str:
    return LABELS.get(name, name)


@dataclass(frozen=True, slots=True)
class RuntimeFacts:
    """What ``choose`` knows about one runtime before launching it."""

    name: str
    capabilities: Capabilities
    availability: Availability


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether ``runtime`` can serve the model here; ``reasons`` say why not (empty when viable)."""

    runtime: str
    viable: bool
    reasons: tuple[str, ...] = ()
    model: ModelInfo | None = None
    """The copy of the model it would load."""
    device: str = ""
    """"cpu" or a GPU kind ("nvidia", ...)."""
    memory_need_bytes: int = 0
    memory_have_bytes: int = 0
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return runtime_label(self.runtime)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "ok"


def check(models: Sequence[ModelInfo], hw: Hardware, runtimes: Mapping[str, RuntimeFacts]) -> tuple[Verdict, ...]:
    """One verdict per runtime, viable ones first, each group in the order given."""
    verdicts = [_check_one(models, hw, facts) for facts in runtimes.values()]
    return tuple(sorted(verdicts, key=lambda v: not v.viable))


def _check_one(models: Sequence[ModelInfo], hw: Hardware, facts: RuntimeFacts) -> Verdict:
    caps, name, label = facts.capabilities, facts.name, runtime_label(facts.name)
    if "remote" in caps.hardware:
        return Verdict(name, False, ("routes to endpoints that already run: nothing to launch or measure",))
    devices = [k for k in caps.hardware if k in hw.kinds and k != "cpu"]
    if "cpu" in caps.hardware and not caps.needs_gpu:
        devices.append("cpu")
    if not devices:
        return Verdict(name, False, (f"{label} needs {_kinds_phrase(caps.hardware)}", *_install(facts)))
    tried: list[Verdict] = []
    for device in devices:
        v = _on_device(models, hw, facts, device)
        if not v.reasons:
            notes = tuple(f"not on {_device_name(t.device)}: {t.reason}" for t in tried)
            install = _install(facts)
            return Verdict(name, not install, install, v.model, device, v.memory_need_bytes,
                           v.memory_have_bytes, v.notes + notes)
        tried.append(v)
    reasons = list(tried[0].reasons) if len(tried) == 1 else [
        f"on {_device_name(t.device)}: {r}" for t in tried for r in t.reasons]
    return Verdict(name, False, (*reasons, *_install(facts)), tried[0].model, tried[0].device,
                   tried[0].memory_need_bytes, tried[0].memory_have_bytes)


def _install(facts: RuntimeFacts) -> tuple[str, ...]:
    # the adapters' probes add a GPU remark about *this* host; the hardware check above owns that
    reason = facts.availability.reason.removesuffix(" - and it needs an NVIDIA GPU")
    return () if facts.availability.usable else (reason,)


def _on_device(models: Sequence[ModelInfo], hw: Hardware, facts: RuntimeFacts, device: str) -> Verdict:
    caps, name, label = facts.capabilities, facts.name, runtime_label(facts.name)
    excluded = _FORMATS_NOT_ON_DEVICE.get((name, device), frozenset())
    loadable = sorted((m for m in models if m.weight_format in caps.weight_formats and m.weight_format not in excluded),
                      key=lambda m: caps.weight_formats.index(m.weight_format))  # the runtime's native format first
    if not loadable:
        return Verdict(name, False, (_format_reason(label, caps, models, device, excluded),), device=device)
    problems: list[tuple[ModelInfo, list[str]]] = []
    for m in loadable:
        reasons = _model_reasons(label, caps, m)
        if not reasons:
            need, have, mem_reason, dtype_note = _memory(name, caps, hw, m, device)
            if mem_reason:
                reasons.append(mem_reason)
            else:
                notes = tuple(n for n in (dtype_note, _quant_note(caps, m)) if n)
                return Verdict(name, True, (), m, device, need, have, notes)
        problems.append((m, reasons))
    return Verdict(name, False, tuple(problems[0][1]), problems[0][0], device)


def _format_reason(label: str, caps: Capabilities, models: Sequence[ModelInfo], device: str,
                   excluded: frozenset[str]) -> str:
    have = ", ".join(sorted({m.weight_format for m in models})) or "none"
    blocked = sorted(excluded & {m.weight_format for m in models})
    if blocked:
        wanted = [f for f in caps.weight_formats if f not in excluded]
        return (f"{label} cannot load {'/'.join(f.upper() for f in blocked)} weights on {_device_name(device)}: "
                f"give it {' or '.join(wanted)} weights too (e.g. an HF folder) as another --model")
    if caps.weight_formats == ("mlc",):
        return f"{label} needs its compiled weights (mlc_llm convert_weight + compile); have {have}"
    return f"{label} needs {' or '.join(caps.weight_formats)} weights; have {have}"


def _model_reasons(label: str, caps: Capabilities, m: ModelInfo) -> list[str]:
    reasons = []
    archs = caps.architectures
    gguf_any = "*gguf" in archs and m.weight_format == "gguf"
    if "*" not in archs and not gguf_any and m.architecture not in archs:
        reasons.append(f"{label} does not support the {m.architecture!r} architecture")
    q = m.quantization
    gguf_native = caps.weight_formats[:1] == ("gguf",) or "gguf" in caps.quantizations
    if q and q not in _UNQUANTIZED and q not in caps.quantizations and not (m.weight_format == "gguf" and gguf_native):
        reasons.append(f"{label} cannot run {q} quantization (it runs {', '.join(caps.quantizations)})")
    return reasons


def _quant_note(caps: Capabilities, m: ModelInfo) -> str | None:
    q = m.quantization
    gguf_native = caps.weight_formats[:1] == ("gguf",) and "gguf" not in caps.quantizations
    if gguf_native and m.weight_format == "gguf" and q and q not in _UNQUANTIZED and q not in caps.quantizations:
        return f"GGUF type {q} is not among the tested ones ({', '.join(caps.quantizations)})"
    return None


def _memory(name: str, caps: Capabilities, hw: Hardware, m: ModelInfo,
            device: str) -> tuple[int, int, str | None, str | None]:
    """(need, have, reason if it does not fit, note about the load dtype)."""
    if device == "cpu":
        dtype = None if m.quantization or m.weight_format == "gguf" else _CPU_DTYPE
        have = hw.memory_available_bytes or hw.memory_bytes
        where = "free RAM"
    else:
        # GPU runtimes load fp32 checkpoints as fp16 (vLLM's dtype "auto"); bf16/fp16 stay as stored
        dtype = None if m.quantization else ("float16" if m.dtype in (None, "float32") else m.dtype)
        gpus = hw.gpus_of((device,))
        have = sum(g.memory_bytes for g in gpus) if caps.multi_gpu else max((g.memory_bytes for g in gpus), default=0)
        where = f"GPU memory ({len(gpus)} GPUs together)" if caps.multi_gpu and len(gpus) > 1 else "GPU memory"
    weights = m.weight_bytes(dtype)
    need = int(weights * _HEADROOM) + _RUNTIME_OVERHEAD.get((name, device), 0)
    at = _dtype_phrase(dtype or m.quantization or m.dtype)
    note = f"weights ~{weights / GiB:.2f} GiB{at}" if weights else None
    if have and weights and need > have:
        return need, have, (f"weights do not fit in {where}{at} (need ~{need / GiB:.1f} GiB with headroom, "
                            f"have {have / GiB:.1f} GiB)"), note
    return need, have, None, note


def _dtype_phrase(dtype: str | None) -> str:
    short = {"float16": "fp16", "float32": "fp32", "bfloat16": "bf16"}
    return f" at {short.get(dtype, dtype)}" if dtype else ""


def _device_name(device: str) -> str:
    return "CPU" if device == "cpu" else _KIND_LABELS.get(device, device).split(" ", 1)[-1]


def _kinds_phrase(kinds: tuple[str, ...]) -> str:
    gpu_kinds = [k for k in kinds if k != "cpu"]
    if len(gpu_kinds) == 1:
        return _KIND_LABELS.get(gpu_kinds[0], gpu_kinds[0])
    names = [_KIND_LABELS.get(k, k).split(" ", 1)[-1] for k in gpu_kinds]
    return f"a GPU ({', '.join(names[:-1])} or {names[-1]})" if names else "hardware this machine lacks"
