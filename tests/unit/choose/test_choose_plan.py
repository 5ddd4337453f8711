"""Settings grids, candidates and the expected duration."""

from __future__ import annotations

import os

import pytest

from inferplane.choose.compat import Verdict
from inferplane.choose.hardware import GiB, Gpu, Hardware
from inferplane.choose.model_info import ModelInfo
from inferplane.choose.plan import WorkloadSpec, candidates, parse_settings

GGUF = ModelInfo("/m/smol.gguf", "gguf", "llama", "S", 135_000_000, "q4_1", None, 8192, 98_000_000)
HF = ModelInfo("/m/smol-hf", "safetensors", "llama", "S", 135_000_000, None, "float32", 8192, 540_000_000)
CPU = Hardware(cores=2, memory_bytes=24 * GiB, memory_available_bytes=20 * GiB)
EMBEDDED = Verdict("embedded", True, model=GGUF, device="cpu")
VLLM = Verdict("vllm", True, model=HF, device="cpu")
TRT = Verdict("trtllm", False, ("TensorRT-LLM needs an NVIDIA GPU",))
WORK = WorkloadSpec(requests=6, concurrency=2, input_len=64, output_len=16)


def plan(verdicts, settings=(), work=WORK, hw=CPU):
    return candidates(verdicts, parse_settings(list(settings)), work, hw, served_name="smollm2",
                      model_refs={GGUF.path: "smollm2"})


def test_parse_settings_aliases_grids_env_and_executable() -> None:
    grids = parse_settings(["embedded:parallel=1,4;threads=1,2", "vllm:executable=/v/bin/python;env.A=x,y;ctx=2048"])
    assert grids == {
        "embedded": {"max_concurrent_sequences": ("1", "4"), "threads": ("1", "2")},
        "vllm": {"executable": ("/v/bin/python",), "env.A": ("x,y",), "context_length_tokens": ("2048",)},
    }
    assert parse_settings(["embedded:parallel=1 vllm:dtype=float32"])["vllm"] == {"dtype": ("float32",)}


@pytest.mark.parametrize("bad", ["parallel=4", "embedded:bogus=1", "embedded:name=x", "embedded:parallel"])
def test_bad_settings_say_what_to_use(bad: str) -> None:
    with pytest.raises(ValueError, match="bad"):
        parse_settings([bad])


def test_grid_expands_to_every_combination_with_unique_ids() -> None:
    cands = plan([EMBEDDED], ["embedded:parallel=1,4;threads=1,2"])
    assert [c.id for c in cands] == ["embedded-parallel1-threads1", "embedded-parallel1-threads2",
                                     "embedded-parallel4-threads1", "embedded-parallel4-threads2"]
    assert cands[2].label == "embedded llama.cpp [parallel=4, threads=1]"
    d = cands[2].deployment
    assert (d.name, d.runtime, d.model, d.max_concurrent_sequences, d.threads, d.replicas) == (
        "smollm2", "embedded", "smollm2", 4, 1, 1)


def test_default_grid_cheap_runtimes_try_one_slot_and_the_concurrency() -> None:
    cands = plan([EMBEDDED, VLLM, TRT])
    assert [(c.runtime, c.deployment.max_concurrent_sequences) for c in cands] == [
        ("embedded", 1), ("embedded", 2), ("vllm", 2)]


def test_hf_runtimes_stay_offline_and_executables_become_absolute() -> None:
    (c,) = plan([VLLM], ["vllm:executable=.venv-vllm/bin/python;dtype=float32"])
    assert c.deployment.env == {"HF_HUB_OFFLINE": "1"}
    assert c.deployment.executable == os.path.abspath(".venv-vllm/bin/python")  # symlink kept, not resolved
    assert c.deployment.dtype == "float32" and c.deployment.model == HF.path
    assert c.label == "vLLM [dtype=float32, parallel=2]"
    assert c.deployment.ready_timeout_s and c.deployment.ready_timeout_s >= 300


def test_invalid_values_are_reported_as_settings_errors() -> None:
    with pytest.raises(ValueError, match="not a valid deployment"):
        plan([EMBEDDED], ["embedded:parallel=0"])


def test_expected_duration_grows_with_work_and_slow_startups() -> None:
    small = plan([EMBEDDED, VLLM])
    big = plan([EMBEDDED, VLLM], work=WorkloadSpec(requests=60, concurrency=2, input_len=64, output_len=160))
    assert all(b.expected_s > s.expected_s for s, b in zip(small, big, strict=True))
    vllm = next(c for c in small if c.runtime == "vllm")
    assert vllm.expected_s > 90 > max(c.expected_s for c in small if c.runtime == "embedded")
    gpu = Hardware(gpus=(Gpu("H100", "nvidia", 80 * GiB),))
    (on_gpu,) = plan([Verdict("vllm", True, model=HF, device="nvidia")], hw=gpu)
    assert on_gpu.expected_s > 0


def test_workload_description() -> None:
    assert WORK.describe() == "synthetic: 6 requests (64 in / 16 out tokens), closed loop c=2, 2 warm-up, seed 0"
    assert "dataset lengths" in WorkloadSpec(kind="sharegpt").describe()


def test_cpu_candidates_share_one_thread_count_unless_the_grid_sets_it() -> None:
    cands = candidates([EMBEDDED], parse_settings(["embedded:parallel=1,4"]), WORK, CPU, served_name="m",
                       model_refs={}, cpu_threads=2)
    assert [c.deployment.threads for c in cands] == [2, 2]
    assert "threads" in cands[0].deployment.model_dump(exclude_unset=True)  # written to the deployment file
    gridded = candidates([EMBEDDED], parse_settings(["embedded:threads=1"]), WORK, CPU, served_name="m",
                         model_refs={}, cpu_threads=2)
    assert [c.deployment.threads for c in gridded] == [1]
    others = candidates([Verdict("vllm", True, model=HF, device="nvidia"), VLLM], {}, WORK, CPU, served_name="m",
                        model_refs={}, cpu_threads=2)
    assert [c.deployment.threads for c in others] == [None, None]  # GPU, and a runtime that picks its own
