"""A runtime's recorded behaviour, loaded from a fixture folder, for the fake server to replay.

A recording folder (``tests/fixtures/<runtime>/`` from source, ``.../<runtime>/live/`` from a live
server, or what ``scripts/record_runtime.py`` writes) holds:

- ``health.json``: ``path``, ``ready_status``, ``ready_body`` and ``loading_status`` (a status
  answered while loading, or null when the port stays closed until ready); the older live
  spelling ``status``/``body`` is read too;
- ``models.json``: the ``GET /v1/models`` body (Ollama's folder: ``{"v1_models", "api_tags"}``);
- ``chat.json`` and ``chat_stream.txt`` (the exact SSE bytes of the same request streamed with
  ``stream_options.include_usage``);
- errors: ``error.json`` (``status``, ``body``, ``trigger``), or per trigger
  ``error_unknown_model.json`` / ``error_max_tokens_too_large.json``, or one ``error.json``
  keyed by trigger (``{"unknown_model": {...}, ...}``, MAX's live folder);
- ``metrics.txt`` (Prometheus text) where the runtime has one;
- ``timing.json`` (live recordings only): ``chunk_offsets_s``, each stream event's arrival after
  the request was sent, and ``chat_s``, the non-streamed request's duration.

The served model name inside the bodies is the first id of ``models.json``; the fake answers with
the name the client asked for in its place. Loading reads files only; nothing here does network I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CHECKS_MODEL", "DEFAULT_CHUNK_DELAY_S", "ErrorRecord", "Recording", "load_recording"]

CHECKS_MODEL = frozenset({"vllm", "lmdeploy", "ollama", "max"})
"""Runtimes that answer a ``model`` other than their served name with an error (their recorded one).

SGLang, TensorRT-LLM, TGI, MLC-LLM (single model) and llama.cpp's server accept any name (their
provenance.json says where that was read or recorded).
"""

DEFAULT_CHUNK_DELAY_S = 0.005
"""Delay between stream events when the recording has no timing (from-source fixtures)."""


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Recording:
    """Everything the fake answers for one runtime, as bytes ready to send."""

    runtime: str
    folder: Path
    model: str
    """The served name that appears in the recorded bodies."""
    health_path: str
    ready_status: int
    ready_body: bytes
    ready_json: bool
    loading_status: int | None
    models: bytes
    chat: bytes
    stream: tuple[bytes, ...]
    """SSE events, each ending in a blank line, ``data: [DONE]`` included."""
    chunk_delays_s: tuple[float, ...]
    """Wait before each event of ``stream`` (the first one is the time to the first byte)."""
    chat_s: float
    """How long the non-streamed answer takes."""
    errors: dict[str, ErrorRecord]
    """By trigger: ``unknown_model``, ``max_tokens``."""
    metrics: bytes | None
    timed: bool
    """True when the delays come from a live recording's ``timing.json``."""

    @property
    def checks_model(self) -> bool:
        return self.runtime in CHECKS_MODEL

    def with_model(self, body: bytes, model: str) -> bytes:
        """``body`` with the recorded served name replaced by ``model`` (a JSON string value)."""
        return body.replace(json.dumps(self.model).encode(), json.dumps(model).encode())


def _events(raw: bytes) -> tuple[bytes, ...]:
    text = raw.decode().replace("\r\n", "\n")
    return tuple(e.encode() + b"\n\n" for e in text.split("\n\n") if e.strip())


def _error(obj: dict[str, Any]) -> ErrorRecord:
    body = obj["body"]
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return ErrorRecord(int(obj["status"]), raw)


def _errors(folder: Path) -> dict[str, ErrorRecord]:
    out: dict[str, ErrorRecord] = {}
    single = folder / "error.json"
    if single.exists():
        obj = json.loads(single.read_text())
        if "status" in obj:
            out["unknown_model"] = out["max_tokens"] = _error(obj)
        else:  # keyed by trigger (MAX's live folder)
            for key, rec in obj.items():
                if isinstance(rec, dict) and "status" in rec and rec["status"] >= 400:
                    out[key] = _error(rec)
    for key, name in (("unknown_model", "error_unknown_model.json"),
                      ("max_tokens", "error_max_tokens_too_large.json")):
        if (folder / name).exists():
            rec = json.loads((folder / name).read_text())
            if rec["status"] >= 400:  # the recorder also keeps what a runtime accepted
                out[key] = _error(rec)
    return out


def _delays(folder: Path, n: int) -> tuple[tuple[float, ...], float, bool]:
    timing = folder / "timing.json"
    if not timing.exists():
        return (DEFAULT_CHUNK_DELAY_S,) * n, DEFAULT_CHUNK_DELAY_S, False
    t = json.loads(timing.read_text())
    offsets = [float(x) for x in t["chunk_offsets_s"]]
    if len(offsets) != n:
        raise ValueError(f"{timing}: {len(offsets)} offsets for {n} stream events")
    delays = tuple(max(0.0, b - a) for a, b in zip([0.0, *offsets], offsets, strict=False))
    return delays, float(t.get("chat_s", offsets[-1] if offsets else 0.0)), True


def load_recording(folder: str | Path) -> Recording:
    """Read a recording folder; raises ``FileNotFoundError``/``ValueError`` when it is incomplete."""
    folder = Path(folder)
    runtime = folder.parent.name if folder.name == "live" else folder.name
    health = json.loads((folder / "health.json").read_text())
    ready_body = health.get("ready_body", health.get("body", ""))
    models_obj = json.loads((folder / "models.json").read_text())
    models_obj = models_obj.get("v1_models", models_obj)
    stream = _events((folder / "chat_stream.txt").read_bytes())
    delays, chat_s, timed = _delays(folder, len(stream))
    metrics = folder / "metrics.txt"
    return Recording(
        runtime=runtime,
        folder=folder,
        model=models_obj["data"][0]["id"],
        health_path=health.get("path", "/health"),
        ready_status=int(health.get("ready_status", health.get("status", 200))),
        ready_body=(json.dumps(ready_body) if isinstance(ready_body, dict) else ready_body or "").encode(),
        ready_json=isinstance(ready_body, dict),
        loading_status=health.get("loading_status"),
        models=json.dumps(models_obj).encode(),
        chat=(folder / "chat.json").read_bytes(),
        stream=stream,
        chunk_delays_s=delays,
        chat_s=chat_s,
        errors=_errors(folder),
        metrics=metrics.read_bytes() if metrics.exists() else None,
        timed=timed,
    )
