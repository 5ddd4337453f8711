"""Small helpers shared by the runtime adapters (no I/O except in the ``*_present`` probes)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from inferplane.runtimes.base import Availability, LaunchError, Resources

if TYPE_CHECKING:
    from inferplane.config import DeploymentConfig

__all__ = [
    "HOST",
    "executable_availability",
    "gpu_env",
    "module_availability",
    "nvidia_gpu_ids",
    "program",
    "reject_settings",
    "setting_flags",
    "which_availability",
]

HOST = "127.0.0.1"
"""Replicas listen on loopback only: the gateway is the public face."""


def program(deployment: DeploymentConfig, default: Iterable[str], *, module: str | None = None) -> list[str]:
    """The command that starts the runtime, with ``deployment.executable`` as its program when set.

    ``default`` is the program part of argv (e.g. ``[python, -m, sglang.launch_server]``,
    ``[lmdeploy, serve, api_server]``, ``[max, serve]``). An ``executable`` replaces the binary
    and keeps the subcommand (``[exe, serve, api_server]``). For runtimes started as a Python
    ``module``, an executable named ``python*`` is the interpreter of another environment
    (``[exe, -m, module]``); any other executable stands for the whole program (a launcher
    script).
    """
    exe = deployment.executable
    default = list(default)
    if not exe:
        return default
    if module is not None:
        return [exe, "-m", module] if Path(exe).name.startswith("python") else [exe]
    return [exe, *default[1:]]


def setting_flags(
    d: DeploymentConfig,
    *,
    context_length: str | None = None,
    dtype: str | None = None,
    quantization: str | None = None,
    tensor_parallel: str | None = None,
    gpu_memory_fraction: str | None = None,
) -> list[str]:
    """``[flag, value, ...]`` for the deployment settings that are set, with the runtime's flag names.

    A setting whose flag is None is not passed (the caller refuses or handles it).
    """
    values = (
        (context_length, d.context_length_tokens),
        (dtype, d.dtype),
        (quantization, d.quantization),
        (tensor_parallel, d.tensor_parallel_size if d.tensor_parallel_size != 1 else None),
        (gpu_memory_fraction, d.gpu_memory_fraction),
    )
    out: list[str] = []
    for flag, value in values:
        if flag is not None and value is not None:
            out += [flag, str(value)]
    return out


def nvidia_gpu_ids() -> tuple[int, ...]:
    """Indices of the NVIDIA GPUs the driver shows (cheap: lists /proc, runs nothing)."""
    root = Path("/proc/driver/nvidia/gpus")
    try:
        return tuple(range(sum(1 for _ in root.iterdir())))
    except OSError:
        return ()


def gpu_env(resources: Resources) -> dict[str, str]:
    """``CUDA_VISIBLE_DEVICES`` for the GPUs the placement backend granted (none: leave it alone)."""
    if not resources.gpu_ids:
        return {}
    return {"CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in resources.gpu_ids)}


def _gpu_reason(needs_gpu: bool) -> str | None:
    if needs_gpu and not nvidia_gpu_ids() and shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU found (no /proc/driver/nvidia/gpus, no nvidia-smi)"
    return None


def module_availability(module: str, install: str, *, needs_gpu: bool) -> Availability:
    """Usable when ``module`` is importable (checked with find_spec: nothing is imported)."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    gpu_note = " - and it needs an NVIDIA GPU" if needs_gpu else ""
    if not found:
        return Availability(False, f"not installed: {install}{gpu_note}")
    problem = _gpu_reason(needs_gpu)
    if problem:
        return Availability(False, f"{module} is installed, but {problem}")
    return Availability(True, f"python module {module} found")


def which_availability(binary: str, install: str, *, needs_gpu: bool) -> Availability:
    """Usable when ``binary`` is on PATH."""
    path = shutil.which(binary)
    gpu_note = " - and it needs an NVIDIA GPU" if needs_gpu else ""
    if path is None:
        return Availability(False, f"{binary} not found on PATH: {install}{gpu_note}")
    problem = _gpu_reason(needs_gpu)
    if problem:
        return Availability(False, f"{path} found, but {problem}")
    return Availability(True, path)


def executable_availability(executable: str) -> Availability:
    """A user-supplied server binary: usable when it exists and may be executed."""
    path = shutil.which(executable) or executable
    if not os.path.isfile(path):
        return Availability(False, f"executable {executable!r} does not exist")
    if not os.access(path, os.X_OK):
        return Availability(False, f"executable {executable!r} is not executable (chmod +x)")
    return Availability(True, f"executable {path}")


def reject_settings(deployment: DeploymentConfig, runtime: str, **why: str) -> None:
    """Raise LaunchError for deployment fields this runtime cannot honour.

    ``why`` maps a field name (``dtype``, ``quantization``, ``tensor_parallel_size``,
    ``gpu_memory_fraction``, ``prefix_caching_off``) to what to do instead.
    """
    set_fields = {
        "dtype": deployment.dtype is not None,
        "quantization": deployment.quantization is not None,
        "tensor_parallel_size": deployment.tensor_parallel_size != 1,
        "gpu_memory_fraction": deployment.gpu_memory_fraction is not None,
        "prefix_caching_off": not deployment.prefix_caching,
        "context_length_tokens": deployment.context_length_tokens is not None,
    }
    for name, hint in why.items():
        if set_fields[name]:
            label = "prefix_caching: false" if name == "prefix_caching_off" else name
            raise LaunchError(f"deployment {deployment.name!r}: runtime {runtime!r} cannot honour {label}; {hint}")
