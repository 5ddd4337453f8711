"""What a model is, read from its files: a GGUF header, or an HF folder's ``config.json``.

Pure Python, no ML libraries. ``read_gguf`` parses the GGUF v2/v3 header (magic, version,
tensor count, key/value pairs, tensor infos) and never reads tensor data: big arrays such
as the tokenizer vocabulary are skipped. ``read_hf`` reads ``config.json`` and the
safetensors headers (8-byte length + JSON) for an exact parameter count. A folder with an
``mlc-chat-config.json`` is MLC-compiled weights.

Every reader raises ``ModelInfoError`` with the path and what was wrong.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["GGUF_FILE_TYPES", "ModelInfo", "ModelInfoError", "inspect_model", "read_gguf", "read_hf"]


class ModelInfoError(ValueError):
    """The model's files cannot be read or are not a model format we know."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """Facts about one copy of a model (one weight format)."""

    path: str
    weight_format: str
    """"gguf", "safetensors", "pt" or "mlc" (the names in ``Capabilities.weight_formats``)."""
    architecture: str
    """Model family in lower case: GGUF ``general.architecture`` or HF ``model_type`` (e.g. "llama")."""
    name: str = ""
    parameter_count: int | None = None
    quantization: str | None = None
    """Lower case: GGUF file type ("q4_1", "f16"), HF ``quantization_config.quant_method`` ("awq", "fp8"),
    MLC code ("q4f16_1"); ``None`` for unquantized HF weights."""
    dtype: str | None = None
    """Stored dtype of unquantized weights ("float32", "bfloat16", "float16")."""
    context_length_tokens: int | None = None
    file_size_bytes: int = 0
    kv_cache_bytes_per_token: int | None = None
    """Of an f16 KV cache (llama.cpp's default): layers x KV heads x (key + value length) x 2 bytes."""
    chat_template: str | None = None
    """GGUF ``tokenizer.chat_template`` (the Jinja text llama.cpp renders chats with), if the file has one."""
    pooling: str | None = None
    """GGUF ``<arch>.pooling_type`` as llama.cpp names it ("none", "mean", "cls", "last", "rank"), if set."""

    def weight_bytes(self, dtype: str | None = None) -> int:
        """Bytes of weights when loaded as ``dtype`` (default: as stored; quantized: file size)."""
        if dtype is None or self.quantization or not self.parameter_count:
            return self.file_size_bytes
        return int(self.parameter_count * DTYPE_BYTES.get(dtype, 2))

    def describe(self) -> str:
        """One line, e.g. ``llama 135M, gguf q4_1, ctx 8192 (smollm2.gguf)``."""
        size = _human_count(self.parameter_count) if self.parameter_count else "? params"
        quant = self.quantization or self.dtype or "?"
        ctx = f", ctx {self.context_length_tokens}" if self.context_length_tokens else ""
        return f"{self.architecture} {size}, {self.weight_format} {quant}{ctx} ({Path(self.path).name})"


DTYPE_BYTES: dict[str, float] = {
    "float32": 4, "fp32": 4, "f32": 4, "float16": 2, "fp16": 2, "f16": 2, "half": 2,
    "bfloat16": 2, "bf16": 2, "fp8": 1, "float8": 1, "int8": 1, "int4": 0.5,
}  # fmt: skip

GGUF_FILE_TYPES: dict[int, str] = {
    0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 7: "q8_0", 8: "q5_0", 9: "q5_1", 10: "q2_k",
    11: "q3_k_s", 12: "q3_k_m", 13: "q3_k_l", 14: "q4_k_s", 15: "q4_k_m", 16: "q5_k_s",
    17: "q5_k_m", 18: "q6_k", 19: "iq2_xxs", 20: "iq2_xs", 21: "q2_k_s", 22: "iq3_xs",
    23: "iq3_xxs", 24: "iq1_s", 25: "iq4_nl", 26: "iq3_s", 27: "iq3_m", 28: "iq2_s", 29: "iq2_m",
    30: "iq4_xs", 31: "iq1_m", 32: "bf16", 36: "tq1_0", 37: "tq2_0", 38: "mxfp4_moe",
}  # fmt: skip
"""``general.file_type`` values (llama.cpp's ``llama_ftype``)."""

_GGUF_MAGIC = b"GGUF"
# GGUF value types: id -> struct format of a scalar (8 = string, 9 = array handled apart)
_SCALARS: dict[int, str] = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                            10: "<Q", 11: "<q", 12: "<d"}  # fmt: skip
_STRING, _ARRAY = 8, 9
_MAX_STRING = 1 << 24


class _Reader:
    def __init__(self, fh: BinaryIO, path: Path) -> None:
        self.fh, self.path = fh, path

    def take(self, fmt: str) -> object:
        size = struct.calcsize(fmt)
        raw = self.fh.read(size)
        if len(raw) != size:
            raise ModelInfoError(f"{self.path}: GGUF header is truncated")
        return struct.unpack(fmt, raw)[0]

    def string(self) -> str:
        n = int(self.take("<Q"))  # type: ignore[call-overload]
        if n > _MAX_STRING:
            raise ModelInfoError(f"{self.path}: GGUF string of {n} bytes; the file is corrupt")
        return self.fh.read(n).decode("utf-8", errors="replace")

    def value(self, vtype: int) -> object:
        if vtype in _SCALARS:
            return self.take(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = int(self.take("<I")), int(self.take("<Q"))  # type: ignore[call-overload]
            if etype in _SCALARS:  # skip the data: vocab scores, token types...
                self.fh.seek(count * struct.calcsize(_SCALARS[etype]), 1)
            elif etype == _STRING:
                for _ in range(count):
                    self.fh.seek(int(self.take("<Q")), 1)  # type: ignore[call-overload]
            else:
                for _ in range(count):
                    self.value(etype)
            return None
        raise ModelInfoError(f"{self.path}: unknown GGUF value type {vtype}")


def read_gguf(path: str | Path) -> ModelInfo:
    """Facts from a GGUF file's header. Raises ``ModelInfoError`` on a non-GGUF or bad file."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            r = _Reader(fh, p)
            if fh.read(4) != _GGUF_MAGIC:
                raise ModelInfoError(f"{p}: not a GGUF file (bad magic)")
            version = int(r.take("<I"))  # type: ignore[call-overload]
            if version not in (2, 3):
                raise ModelInfoError(f"{p}: GGUF version {version} is not supported (2 or 3)")
            n_tensors, n_kv = int(r.take("<Q")), int(r.take("<Q"))  # type: ignore[call-overload]
            kv: dict[str, object] = {}
            for _ in range(n_kv):
                key = r.string()
                kv[key] = r.value(int(r.take("<I")))  # type: ignore[call-overload]
            params = 0
            for _ in range(n_tensors):
                r.string()
                dims = [int(r.take("<Q")) for _ in range(int(r.take("<I")))]  # type: ignore[call-overload]
                r.take("<I")
                r.take("<Q")
                params += math.prod(dims)
    except OSError as exc:
        raise ModelInfoError(f"cannot read {p}: {exc.strerror or exc}") from exc
    arch = str(kv.get("general.architecture") or "unknown").lower()
    ftype = kv.get("general.file_type")
    ctx = kv.get(f"{arch}.context_length")
    return ModelInfo(
        path=str(p), weight_format="gguf", architecture=arch, name=str(kv.get("general.name") or p.stem),
        parameter_count=params or _from_size_label(kv.get("general.size_label")),
        quantization=GGUF_FILE_TYPES.get(int(ftype), f"type{ftype}") if isinstance(ftype, int) else None,
        context_length_tokens=int(ctx) if isinstance(ctx, int) else None,
        file_size_bytes=p.stat().st_size, kv_cache_bytes_per_token=_gguf_kv_bytes(kv, arch),
        chat_template=tmpl if isinstance(tmpl := kv.get("tokenizer.chat_template"), str) else None,
        pooling=_POOLING.get(pool) if isinstance(pool := kv.get(f"{arch}.pooling_type"), int) else None,
    )  # fmt: skip


_POOLING = {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}
"""llama.cpp's ``enum llama_pooling_type`` (include/llama.h; the values xllamacpp's
``llama_pooling_type`` enum shows)."""


def _gguf_kv_bytes(kv: dict[str, object], arch: str) -> int | None:
    """f16 KV-cache bytes per token from llama.cpp's metadata keys (``<arch>.block_count``,
    ``.attention.head_count[_kv]``, ``.attention.key_length`` / ``value_length``, ``.embedding_length``)."""
    def num(key: str) -> int | None:
        v = kv.get(f"{arch}.{key}")
        return int(v) if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None

    layers, heads, emb = num("block_count"), num("attention.head_count"), num("embedding_length")
    if not (layers and heads and emb):
        return None
    kv_heads = num("attention.head_count_kv") or heads
    k_len = num("attention.key_length") or emb // heads
    v_len = num("attention.value_length") or emb // heads
    return layers * kv_heads * (k_len + v_len) * 2


def _from_size_label(label: object) -> int | None:
    """``"135M"`` -> 135_000_000, ``"8x7B"`` -> 56e9; None when absent or unparseable."""
    m = re.fullmatch(r"(?:(\d+)x)?(\d+(?:\.\d+)?)([KMBT])", str(label or "").strip(), re.IGNORECASE)
    if not m:
        return None
    scale = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[m.group(3).upper()]
    return int(int(m.group(1) or 1) * float(m.group(2)) * scale)


def read_hf(folder: str | Path) -> ModelInfo:
    """Facts from an HF model folder (``config.json`` + safetensors headers), or MLC weights."""
    d = Path(folder)
    mlc = d / "mlc-chat-config.json"
    if mlc.is_file():
        cfg = _json(mlc)
        return ModelInfo(
            path=str(d), weight_format="mlc", architecture=str(cfg.get("model_type", "unknown")).lower(),
            name=d.name, quantization=str(cfg.get("quantization") or "") or None,
            context_length_tokens=_int(cfg.get("context_window_size")), file_size_bytes=_folder_bytes(d),
        )  # fmt: skip
    if not (d / "config.json").is_file():
        raise ModelInfoError(f"{d}: no config.json (not an HF model folder)")
    cfg = _json(d / "config.json")
    nested = cfg.get("text_config")  # multimodal configs keep the decoder's sizes here
    text_cfg: dict[str, object] = nested if isinstance(nested, dict) else {}
    shards = sorted(d.glob("*.safetensors"))
    fmt = "safetensors" if shards else ("pt" if any(d.glob("*.bin")) else "safetensors")
    quant = cfg.get("quantization_config")
    dtype = cfg.get("torch_dtype") or cfg.get("dtype")
    params = _safetensors_params(shards) or _estimate_params({**cfg, **text_cfg})
    return ModelInfo(
        path=str(d), weight_format=fmt, architecture=str(cfg.get("model_type", "unknown")).lower(),
        name=str(cfg.get("_name_or_path") or d.name),
        parameter_count=params,
        quantization=str(quant.get("quant_method")).lower() if isinstance(quant, dict) else None,
        dtype=str(dtype) if dtype else None,
        context_length_tokens=_int(cfg.get("max_position_embeddings") or text_cfg.get("max_position_embeddings")),
        file_size_bytes=sum(s.stat().st_size for s in shards) or _folder_bytes(d),
    )  # fmt: skip


def _json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelInfoError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelInfoError(f"{path}: expected a JSON object")
    return data


def _int(v: object) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _folder_bytes(d: Path) -> int:
    return sum(f.stat().st_size for f in d.rglob("*") if f.is_file())


def _safetensors_params(shards: list[Path]) -> int | None:
    """Sum of tensor element counts from each shard's JSON header (no tensor data read)."""
    total = 0
    for shard in shards:
        try:
            with shard.open("rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(n))
        except (OSError, ValueError, struct.error):
            return None
        total += sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")
    return total or None


def _estimate_params(cfg: dict[str, object]) -> int | None:
    """Decoder-only estimate from config sizes (embeddings + per-layer attention and MLP)."""
    h, layers, inter, vocab = (_int(cfg.get(k)) for k in
                               ("hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size"))
    if not (h and layers and vocab):
        return None
    heads = _int(cfg.get("num_attention_heads")) or 1
    kv_heads = _int(cfg.get("num_key_value_heads")) or heads
    kv_dim = h * kv_heads // heads
    per_layer = 2 * h * h + 2 * h * kv_dim + 3 * h * (inter or 4 * h)
    embed = vocab * h * (1 if cfg.get("tie_word_embeddings") else 2)
    return layers * per_layer + embed


def _human_count(n: int) -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}"
    return str(n)


def inspect_model(path: str | Path) -> ModelInfo:
    """A GGUF file or a model folder; raises ``ModelInfoError`` for anything else."""
    p = Path(path)
    if p.is_dir():
        return read_hf(p)
    if p.is_file():
        return read_gguf(p)
    raise ModelInfoError(f"model not found: {p}")
