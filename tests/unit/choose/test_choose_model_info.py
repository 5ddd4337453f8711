"""Reading models: GGUF headers (v2/v3) and HF folders, without ML libraries."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferplane.choose.model_info import (
    GGUF_FILE_TYPES,
    ModelInfoError,
    inspect_model,
    read_gguf,
    read_hf,
)


def test_gguf_header_gives_architecture_params_quantization_and_context(tiny_gguf: Path) -> None:
    info = read_gguf(tiny_gguf)
    assert info.weight_format == "gguf"
    assert info.architecture == "llama"
    assert info.name == "Tiny"
    assert info.parameter_count == 3000  # from tensor shapes; the vocab arrays are skipped
    assert info.quantization == "q4_1"
    assert info.context_length_tokens == 2048
    assert info.file_size_bytes == tiny_gguf.stat().st_size
    assert "llama 3K, gguf q4_1, ctx 2048" in info.describe()


def test_gguf_v2_and_size_label_when_there_are_no_tensors(gguf) -> None:
    p = gguf(kv={"general.architecture": "Qwen2", "general.size_label": "8x7B", "general.file_type": 15},
             version=2)
    info = read_gguf(p)
    assert info.architecture == "qwen2"
    assert info.parameter_count == 56_000_000_000
    assert info.quantization == "q4_k_m"
    assert info.context_length_tokens is None


@pytest.mark.parametrize(("kw", "message"), [
    ({"kv": {}, "magic": b"GGML"}, "not a GGUF file"),
    ({"kv": {}, "version": 1}, "GGUF version 1"),
])
def test_gguf_errors_name_the_problem(gguf, kw: dict, message: str) -> None:
    with pytest.raises(ModelInfoError, match=message):
        read_gguf(gguf(**kw))


def test_truncated_gguf_is_an_error(tmp_path: Path, tiny_gguf: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_gguf.read_bytes()[:30])
    with pytest.raises(ModelInfoError, match="truncated"):
        read_gguf(cut)


def test_file_types_follow_llama_cpp_numbering() -> None:
    assert (GGUF_FILE_TYPES[0], GGUF_FILE_TYPES[1], GGUF_FILE_TYPES[7], GGUF_FILE_TYPES[32]) == (
        "f32", "f16", "q8_0", "bf16")


def test_hf_folder_counts_parameters_from_safetensors_headers(hf) -> None:
    folder = hf("m", {"model_type": "llama", "torch_dtype": "bfloat16", "max_position_embeddings": 4096},
                {"a": [10, 20], "b": [5]})
    info = read_hf(folder)
    assert (info.weight_format, info.architecture, info.parameter_count) == ("safetensors", "llama", 205)
    assert (info.dtype, info.quantization, info.context_length_tokens) == ("bfloat16", None, 4096)
    assert info.weight_bytes("float32") == 205 * 4


def test_hf_quantized_config_and_estimate_without_weights(hf) -> None:
    cfg = {"model_type": "mistral", "hidden_size": 4096, "num_hidden_layers": 32, "intermediate_size": 14336,
           "vocab_size": 32000, "num_attention_heads": 32, "num_key_value_heads": 8,
           "quantization_config": {"quant_method": "AWQ", "bits": 4}}
    info = read_hf(hf("awq", cfg))
    assert info.quantization == "awq"
    assert 7.0e9 < (info.parameter_count or 0) < 7.5e9  # Mistral 7B is 7.24B


def test_mlc_folder_is_compiled_weights(tmp_path: Path) -> None:
    d = tmp_path / "mlc"
    d.mkdir()
    (d / "mlc-chat-config.json").write_text('{"model_type": "llama", "quantization": "q4f16_1"}')
    info = inspect_model(d)
    assert (info.weight_format, info.quantization) == ("mlc", "q4f16_1")


def test_folder_without_config_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelInfoError, match=r"no config\.json"):
        inspect_model(tmp_path)
    with pytest.raises(ModelInfoError, match="not found"):
        inspect_model(tmp_path / "nope.gguf")
