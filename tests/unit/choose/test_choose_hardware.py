"""Hardware detection, with GPUs described by command output and /proc as files."""

from __future__ import annotations

from pathlib import Path

from inferplane.choose.hardware import (
    GiB,
    Gpu,
    Hardware,
    detect_hardware,
    parse_meminfo,
    parse_nvidia_smi,
)


def test_nvidia_smi_csv_with_header_and_units() -> None:
    text = "name, memory.total [MiB]\nNVIDIA H100 80GB HBM3, 81559 MiB\nNVIDIA H100 80GB HBM3, 81559 MiB\n"
    gpus = parse_nvidia_smi(text)
    assert [g.name for g in gpus] == ["NVIDIA H100 80GB HBM3"] * 2
    assert gpus[0].vendor == "nvidia" and gpus[0].memory_bytes == 81559 * 2**20


def test_nvidia_smi_noheader_nounits_and_garbage() -> None:
    assert parse_nvidia_smi("Tesla T4, 15360\n\nNo devices were found\n") == (Gpu("Tesla T4", "nvidia", 15360 * 2**20),)


def test_meminfo() -> None:
    assert parse_meminfo("MemTotal:  2048 kB\nMemFree: 100 kB\nMemAvailable:  1024 kB\n") == (2048 * 1024, 1024 * 1024)


def test_detect_reads_proc_and_nvidia_smi(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text("model name\t: Test CPU\nflags\t\t: fpu avx2 avx512f\n")
    (tmp_path / "meminfo").write_text("MemTotal: 16777216 kB\nMemAvailable: 8388608 kB\n")
    seen = []

    def run(cmd: list[str]) -> str | None:
        seen.append(cmd[0])
        return "NVIDIA L4, 23034\n"

    hw = detect_hardware(run, tmp_path)
    assert seen == ["nvidia-smi"]
    assert hw.cpu_model == "Test CPU" and "avx512f" in hw.cpu_flags
    assert (hw.memory_bytes, hw.memory_available_bytes) == (16 * GiB, 8 * GiB)
    assert hw.kinds == {"cpu", "nvidia"}
    assert "NVIDIA L4 22 GiB" in hw.describe()


def test_no_gpu_when_nvidia_smi_is_absent(tmp_path: Path) -> None:
    hw = detect_hardware(lambda _cmd: None, tmp_path)  # no /proc files either
    assert hw.gpus == () and hw.kinds == {"cpu"} and hw.cores >= 1


def test_gpus_of_filters_by_vendor() -> None:
    hw = Hardware(gpus=(Gpu("a", "nvidia", 1), Gpu("b", "amd", 2)))
    assert hw.gpus_of(("amd",)) == (Gpu("b", "amd", 2),)
