"""Fixtures for the choose tests: a GGUF writer (so tests never need a real model) and result builders."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from inferplane.choose.results import CandidateResult, SloValue
from inferplane.config.models import DeploymentConfig

GgufWriter = Callable[..., Path]
__all__ = ["result", "write_gguf", "write_hf"]


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _kv(key: str, value: object) -> bytes:
    out = _s(key)
    if isinstance(value, bool):
        return out + struct.pack("<I?", 7, value)
    if isinstance(value, int):
        return out + struct.pack("<II", 4, value)
    if isinstance(value, float):
        return out + struct.pack("<If", 6, value)
    if isinstance(value, str):
        return out + struct.pack("<I", 8) + _s(value)
    if isinstance(value, list) and value and isinstance(value[0], str):
        return out + struct.pack("<IIQ", 9, 8, len(value)) + b"".join(_s(v) for v in value)
    if isinstance(value, list):
        return out + struct.pack("<IIQ", 9, 6, len(value)) + b"".join(struct.pack("<f", v) for v in value)
    raise TypeError(value)


def write_gguf(path: Path, kv: dict[str, object], tensors: Sequence[tuple[str, tuple[int, ...]]] = (),
               *, version: int = 3, magic: bytes = b"GGUF") -> Path:
    """A GGUF header (no tensor data: readers must not need it)."""
    body = magic + struct.pack("<IQQ", version, len(tensors), len(kv))
    body += b"".join(_kv(k, v) for k, v in kv.items())
    for name, dims in tensors:
        body += _s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        body += struct.pack("<IQ", 3, 0)
    path.write_bytes(body + b"\0" * 64)
    return path


@pytest.fixture
def gguf(tmp_path: Path) -> GgufWriter:
    def make(name: str = "m.gguf", **kw: object) -> Path:
        return write_gguf(tmp_path / name, **kw)  # type: ignore[arg-type]

    return make


@pytest.fixture
def tiny_gguf(tmp_path: Path) -> Path:
    """A llama-architecture Q4_1 GGUF header with two tensors (1,000 + 2,000 params) and a vocab."""
    return write_gguf(tmp_path / "tiny.gguf", {
        "general.architecture": "llama", "general.name": "Tiny", "general.file_type": 3,
        "llama.context_length": 2048, "tokenizer.ggml.tokens": ["<s>", "</s>", "a"] * 50,
        "tokenizer.ggml.scores": [0.0] * 150,
    }, [("tok_embd.weight", (10, 100)), ("blk.0.ffn.weight", (20, 100))])


def write_hf(folder: Path, config: dict[str, object], tensors: dict[str, list[int]] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    if tensors is not None:
        header = json.dumps({k: {"dtype": "F32", "shape": v, "data_offsets": [0, 0]} for k, v in tensors.items()})
        (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header.encode())
    return folder


def result(id: str, goodput: float, *, runtime: str = "embedded", status: str = "ok", out_tok_s: float = 10.0,
           ttft_p95: float = 0.5, slos: Sequence[tuple[str, float, float]] = (), attainment: float | None = None,
           replicas: int = 1, device: str = "cpu") -> CandidateResult:
    """A measured result. ``slos``: (label like "ttft_p95<=1000ms", threshold_s, observed_s)."""
    values = tuple(SloValue(label, label.split("_")[0], 95.0, thr, obs, obs <= thr) for label, thr, obs in slos)
    ok = status == "ok"
    return CandidateResult(
        id=id, runtime=runtime, label=id, device=device,
        deployment=DeploymentConfig(name="m", runtime=runtime, model="m.gguf", replicas=replicas),
        status=status, error="" if ok else "boom", replicas=replicas, startup_s=1.0 if ok else None,
        n_requests=10, n_ok=10 if ok else 0, duration_s=10.0, request_throughput=goodput if ok else 0.0,
        output_throughput=out_tok_s if ok else 0.0, goodput_rps=goodput if ok else 0.0,
        slo_attainment=attainment, slos=values, ttft_p95_s=ttft_p95 if ok else math.nan,
    )


@pytest.fixture
def hf(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str, config: dict[str, object], tensors: dict[str, list[int]] | None = None) -> Path:
        return write_hf(tmp_path / name, config, tensors)

    return make


@pytest.fixture
def make_result() -> Callable[..., CandidateResult]:
    return result
