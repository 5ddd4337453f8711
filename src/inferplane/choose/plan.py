"""What ``choose`` will measure: candidates (runtime x settings grid), the workload, the expected time.

Pure. ``parse_settings("embedded:parallel=1,4;threads=1,2")`` gives each runtime's grid:
keys are ``DeploymentConfig`` fields or short aliases (``parallel``, ``ctx``, ``tp``, ...),
``env.NAME=VALUE`` sets an environment variable, and a comma separates values to try.
``candidates(...)`` expands each viable runtime's grid into full ``DeploymentConfig``
values - the very deployments that are launched and, for the winner, written out.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from inferplane.choose.compat import Verdict, runtime_label
from inferplane.choose.hardware import Hardware
from inferplane.config.models import DeploymentConfig

__all__ = ["ALIASES", "Candidate", "Grid", "WorkloadSpec", "candidates", "expected_seconds", "parse_settings"]

ALIASES: dict[str, str] = {
    "parallel": "max_concurrent_sequences", "slots": "max_concurrent_sequences",
    "max_num_seqs": "max_concurrent_sequences", "batch": "max_concurrent_sequences",
    "ctx": "context_length_tokens", "ctx_size": "context_length_tokens", "max_model_len": "context_length_tokens",
    "tp": "tensor_parallel_size", "gpu_mem": "gpu_memory_fraction",
}  # fmt: skip
_SHORT = {"max_concurrent_sequences": "parallel", "context_length_tokens": "ctx", "tensor_parallel_size": "tp",
          "gpu_memory_fraction": "gpu_mem"}  # fmt: skip
_NOT_SETTINGS = frozenset({"name", "runtime", "model", "endpoints", "fallback", "replicas"})
_GGUF_NATIVE = frozenset({"embedded", "llamacpp"})
"""Runtimes cheap to start: their default grid tries one slot and the workload's concurrency."""
_THREADED = frozenset({"embedded", "llamacpp"})
"""Runtimes whose adapters pass a deployment's ``threads`` on (the others pick their own)."""

STARTUP_S: dict[tuple[str, str], float] = {
    ("embedded", "cpu"): 5, ("llamacpp", "cpu"): 5, ("ollama", "cpu"): 10, ("vllm", "cpu"): 90,
    ("max", "cpu"): 60, ("vllm", "gpu"): 120, ("sglang", "gpu"): 120, ("trtllm", "gpu"): 180,
    ("lmdeploy", "gpu"): 90, ("tgi", "gpu"): 120, ("mlc", "gpu"): 60, ("max", "gpu"): 120,
}  # fmt: skip
"""Rough time to ready, seconds (measured here for CPU: docs/runtimes-on-cpu.md); unknown: 60 s."""

Grid = dict[str, tuple[str, ...]]
"""Deployment field -> values to try (strings; pydantic converts them)."""


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """The traffic every candidate gets: same kind, sizes, load and seed; fresh prompts per run."""

    kind: str = "synthetic"
    """"synthetic", "sharegpt", "shared-prefix" or "trace:FILE" (an access log or JSONL trace,
    replayed at its recorded arrival times; then ``input_len``/``output_len`` are its means)."""
    requests: int = 20
    concurrency: int = 4
    input_len: int = 128
    output_len: int = 64
    max_tokens: int | None = None
    """ShareGPT: cap on each request's max_tokens (its dataset reply length otherwise)."""
    warmup_requests: int = 2
    seed: int = 0
    trace_speed: float = 1.0
    """Trace replay: arrival times are divided by this."""

    @property
    def is_trace(self) -> bool:
        return self.kind.startswith("trace:")

    def describe(self) -> str:
        if self.is_trace:
            speed = f" x{self.trace_speed:g}" if self.trace_speed != 1.0 else ""
            return (f"{self.kind}: {self.requests} requests at their recorded arrival times{speed} "
                    f"(mean {self.input_len} in / {self.output_len} out tokens), "
                    f"{self.warmup_requests} warm-up")
        sizes = f"{self.input_len} in / {self.output_len} out tokens" if self.kind != "sharegpt" else (
            f"max_tokens <= {self.max_tokens}" if self.max_tokens else "dataset lengths")
        return (f"{self.kind}: {self.requests} requests ({sizes}), closed loop c={self.concurrency}, "
                f"{self.warmup_requests} warm-up, seed {self.seed}")

    def mean_output_tokens(self) -> int:
        if self.kind == "sharegpt":
            return min(self.max_tokens or 200, 200)
        return self.output_len


@dataclass(frozen=True, slots=True)
class Candidate:
    """One runtime with one combination of settings."""

    id: str
    """Unique, file-name safe, e.g. ``embedded-parallel1-threads2``."""
    runtime: str
    settings: tuple[tuple[str, str], ...]
    """The fields that were varied or given, short names, for display."""
    deployment: DeploymentConfig
    device: str
    expected_s: float = 0.0
    notes: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.settings if k != "executable" and not k.startswith("env."))
        return f"{runtime_label(self.runtime)} [{inner}]" if inner else runtime_label(self.runtime)


def parse_settings(spec: Sequence[str]) -> dict[str, Grid]:
    """``["embedded:parallel=1,4;threads=1,2", "vllm:executable=/v/bin/python"]`` -> per-runtime grids.

    Raises ``ValueError`` naming the bad item.
    """
    grids: dict[str, Grid] = {}
    for block in (b for s in spec for b in s.split()):
        runtime, sep, body = block.partition(":")
        if not sep or not runtime:
            raise ValueError(f"bad --settings {block!r}: expected RUNTIME:key=v1,v2;key2=v")
        grid = grids.setdefault(runtime.strip(), {})
        for item in filter(None, (p.strip() for p in body.split(";"))):
            key, eq, values = item.partition("=")
            key = key.strip()
            if key.startswith("env."):
                key, values = f"env.{key[4:]}", values  # a value may contain commas: no grid for env
                grid[key] = (values,)
                continue
            key = ALIASES.get(key, key)
            if not eq or key in _NOT_SETTINGS or key not in DeploymentConfig.model_fields:
                raise ValueError(f"bad setting {item!r} for {runtime}: use a deployment field "
                                 f"(`inferplane config schema`) or one of {', '.join(sorted(ALIASES))}")
            split = (values,) if key == "executable" else tuple(v.strip() for v in values.split(",") if v.strip())
            grid[key] = split
    return grids


def _default_grid(runtime: str, concurrency: int) -> Grid:
    if runtime in _GGUF_NATIVE:
        values = sorted({1, concurrency if concurrency > 1 else 4})
        return {"max_concurrent_sequences": tuple(str(v) for v in values)}
    return {"max_concurrent_sequences": (str(max(1, concurrency)),)}


def candidates(verdicts: Sequence[Verdict], grids: Mapping[str, Grid], workload: WorkloadSpec, hw: Hardware,
               *, served_name: str, model_refs: Mapping[str, str],
               cpu_threads: int | None = None) -> tuple[Candidate, ...]:
    """Every viable runtime's settings grid, expanded. ``model_refs`` maps a copy's path to how the user named it.

    ``cpu_threads``: given to every CPU candidate of a runtime that takes a thread count (llama.cpp)
    and whose grid does not set ``threads``, so all are
    measured with the same count (left to ``serve``, each would get the cores free at its own
    start, which the previous candidate's load skews).

    Raises ``ValueError`` when a combination is not a valid deployment.
    """
    out: list[Candidate] = []
    for v in verdicts:
        if not v.viable or v.model is None:
            continue
        user = grids.get(v.runtime, {})
        grid = dict(user)
        if "max_concurrent_sequences" not in grid:
            default = _default_grid(v.runtime, workload.concurrency)["max_concurrent_sequences"]
            grid["max_concurrent_sequences"] = default if not user else (str(max(1, workload.concurrency)),)
        keys = sorted(grid)
        for combo in itertools.product(*(grid[k] for k in keys)):
            chosen = dict(zip(keys, combo, strict=True))
            dep = _deployment(v, chosen, served_name, model_refs)
            if v.runtime in _THREADED and v.device == "cpu" and cpu_threads and "threads" not in chosen:
                dep = dep.model_copy(update={"threads": cpu_threads})
            shown = tuple((_SHORT.get(k, k), val) for k, val in chosen.items())
            ident = "-".join([v.runtime, *(f"{k.replace('env.', '')}{_safe(val)}" for k, val in shown
                                            if k != "executable")])
            c = Candidate(ident, v.runtime, shown, dep, v.device)
            out.append(replace(c, expected_s=expected_seconds(c, v, workload, hw)))
    seen: dict[str, int] = {}
    unique = []
    for c in out:  # ids name result folders: keep them unique
        n = seen[c.id] = seen.get(c.id, 0) + 1
        unique.append(c if n == 1 else replace(c, id=f"{c.id}-{n}"))
    return tuple(unique)


def _safe(value: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._" else "_" for ch in value)[:24]


def _deployment(v: Verdict, chosen: Mapping[str, str], served_name: str,
                model_refs: Mapping[str, str]) -> DeploymentConfig:
    assert v.model is not None
    data: dict[str, Any] = {"name": served_name, "runtime": v.runtime,
                            "model": model_refs.get(v.model.path, v.model.path), "replicas": 1}
    env: dict[str, str] = {}
    if v.model.weight_format != "gguf" and v.runtime not in _GGUF_NATIVE:
        env["HF_HUB_OFFLINE"] = "1"  # a local folder: never reach for a model hub
    for key, value in chosen.items():
        if key.startswith("env."):
            env[key[4:]] = value
        elif key == "executable" and os.sep in value:
            data[key] = os.path.abspath(os.path.expanduser(value))  # not resolve(): a venv's python is a symlink
        else:
            data[key] = value
    if env:
        data["env"] = env
    startup = STARTUP_S.get((v.runtime, "cpu" if v.device == "cpu" else "gpu"), 60.0)
    data.setdefault("ready_timeout_s", max(120.0, 5 * startup))
    try:
        return DeploymentConfig.model_validate(data)
    except ValidationError as exc:
        bad = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"settings for {v.runtime} are not a valid deployment: {bad}") from exc


def expected_seconds(c: Candidate, v: Verdict, workload: WorkloadSpec, hw: Hardware) -> float:
    """Rough wall time of one candidate: startup + warm-up + the run + stop.

    Decode speed per sequence ~ memory bandwidth / weight bytes (CPU ~2.5 GB/s per thread,
    which matched SmolLM2 Q4 on this project's 2-core box; a GPU ~1 TB/s); batching adds
    ~sqrt(sequences in flight). Prompts are processed ~10x faster than decoding. A guide, not a promise.
    """
    startup = STARTUP_S.get((c.runtime, "cpu" if c.device == "cpu" else "gpu"), 60.0)
    weights = max(v.model.weight_bytes("float32" if c.device == "cpu" and v.model.weight_format != "gguf"
                                       else None) if v.model else 1, 1)
    if c.device == "cpu":
        threads = c.deployment.threads or hw.cores
        bandwidth = min(max(threads, 1), 16) * 2.5e9
    else:
        bandwidth = 1e12
    per_seq = bandwidth / weights
    in_flight = max(1, min(workload.concurrency, c.deployment.max_concurrent_sequences))
    tok_s = per_seq * in_flight**0.5
    n = workload.requests + workload.warmup_requests
    decode = n * workload.mean_output_tokens() / tok_s
    prefill = n * workload.input_len / (per_seq * 10)
    return round(startup + decode + prefill + 3.0, 1)
