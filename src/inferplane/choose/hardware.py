"""The machine, as plain data: CPU features, usable cores, memory, GPUs.

``detect_hardware()`` reads /proc (Linux), the process's CPU affinity and
``nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits`` when that
program exists. Everything else in ``choose`` takes a ``Hardware`` value, so tests
describe GPU hosts as data (``Hardware(gpus=(Gpu("NVIDIA H100", "nvidia", 80 * GiB),))``).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["GiB", "Gpu", "Hardware", "detect_hardware", "parse_meminfo", "parse_nvidia_smi"]

GiB = 1 << 30


@dataclass(frozen=True, slots=True)
class Gpu:
    name: str
    vendor: str
    """A ``Capabilities.hardware`` kind: "nvidia", "amd", "apple", "intel-gpu"."""
    memory_bytes: int


@dataclass(frozen=True, slots=True)
class Hardware:
    cores: int = 1
    """CPU cores this process may use (affinity)."""
    memory_bytes: int = 0
    memory_available_bytes: int = 0
    cpu_model: str = ""
    cpu_flags: frozenset[str] = frozenset()
    machine: str = "x86_64"
    gpus: tuple[Gpu, ...] = field(default=())

    @property
    def kinds(self) -> frozenset[str]:
        """The ``Capabilities.hardware`` kinds present: "cpu" plus each GPU vendor."""
        return frozenset({"cpu", *(g.vendor for g in self.gpus)})

    def gpus_of(self, kinds: tuple[str, ...]) -> tuple[Gpu, ...]:
        return tuple(g for g in self.gpus if g.vendor in kinds)

    def describe(self) -> str:
        simd = [f for f in ("avx512f", "avx512_bf16", "amx_tile", "avx2", "neon") if f in self.cpu_flags]
        cpu = f"{self.cores} cores ({', '.join(simd) or 'no SIMD flags seen'})"
        mem = f"{self.memory_bytes / GiB:.0f} GiB RAM ({self.memory_available_bytes / GiB:.0f} free)"
        gpus = ", ".join(f"{g.name} {g.memory_bytes / GiB:.0f} GiB" for g in self.gpus) or "no GPU"
        return f"{self.cpu_model or self.machine}: {cpu}, {mem}, {gpus}"


def parse_meminfo(text: str) -> tuple[int, int]:
    """(MemTotal, MemAvailable) in bytes from /proc/meminfo text."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    total = values.get("MemTotal", 0)
    return total, values.get("MemAvailable", values.get("MemFree", total))


def parse_nvidia_smi(text: str) -> tuple[Gpu, ...]:
    """GPUs from ``nvidia-smi --query-gpu=name,memory.total --format=csv[,noheader][,nounits]``.

    Memory is MiB (with or without a " MiB" suffix); a header line and blank lines are skipped.
    """
    gpus = []
    for line in text.splitlines():
        name, _, mem = line.rpartition(",")
        mem = mem.strip().removesuffix("MiB").strip()
        if not name.strip() or not mem.isdigit():
            continue
        gpus.append(Gpu(name.strip(), "nvidia", int(mem) * 2**20))
    return tuple(gpus)


def _cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    model, flags = "", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return model, flags


Runner = Callable[[list[str]], str | None]


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def detect_hardware(run: Runner = _run, proc_root: Path = Path("/proc")) -> Hardware:
    """This machine. ``run`` executes a command and returns its stdout or None (a seam for tests)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        model, flags = _cpuinfo((proc_root / "cpuinfo").read_text(errors="replace"))
    except OSError:
        model, flags = platform.processor(), frozenset()
    try:
        total, available = parse_meminfo((proc_root / "meminfo").read_text())
    except OSError:
        total = available = 0
    smi = run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"])
    gpus = parse_nvidia_smi(smi) if smi else ()
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        gpus += (Gpu("Apple GPU (unified memory)", "apple", total),)
    return Hardware(cores=cores, memory_bytes=total, memory_available_bytes=available, cpu_model=model,
                    cpu_flags=flags, machine=platform.machine(), gpus=gpus)
