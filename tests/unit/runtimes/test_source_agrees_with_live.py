"""Where a runtime was both read from source and recorded live (vLLM, MAX), the from-source fixtures
agree with the live recording in shape - keys, value types, stream event order, error envelope,
metric families - not in values (ids, times, text and counts differ by construction)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from inferplane.bench.fake_recording import load_recording

FIXTURES = Path(__file__).parents[2] / "fixtures"
BOTH = [r for r in ("vllm", "max") if (FIXTURES / r / "live").is_dir()]


def _shape(obj: object, at: str = "") -> dict[str, str]:
    """JSON path -> type name; lists by their first element; null matches any type."""
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        out[at or "."] = "object"
        for k, v in obj.items():
            out.update(_shape(v, f"{at}.{k}"))
    elif isinstance(obj, list):
        out[at] = "array"
        for v in obj[:1]:
            out.update(_shape(v, at + "[]"))
    else:
        out[at] = "null" if obj is None else type(obj).__name__
    return out


def _agree(source: dict[str, str], live: dict[str, str], what: str) -> None:
    missing = sorted(set(source) - set(live))
    assert not missing, f"{what}: the source fixture has fields the live runtime does not send: {missing}"
    clash = {k: (source[k], live[k]) for k in set(source) & set(live)
             if source[k] != live[k] and "null" not in (source[k], live[k])}
    assert not clash, f"{what}: types differ (source, live): {clash}"


def _events(folder: Path) -> list[dict | str]:
    rec = load_recording(folder)
    out: list[dict | str] = []
    for e in rec.stream:
        data = e.decode().strip().removeprefix("data:").strip()
        out.append("[DONE]" if data == "[DONE]" else json.loads(data))
    return out


def _kind(event: dict | str) -> str:
    if event == "[DONE]":
        return "done"
    assert isinstance(event, dict)
    if event.get("choices") == []:
        return "usage"
    return "finish" if event["choices"][0].get("finish_reason") else "delta"


@pytest.mark.parametrize("runtime", BOTH)
def test_chat_and_models_bodies_have_the_live_shape(runtime: str) -> None:
    for name in ("chat.json", "models.json"):
        source = json.loads((FIXTURES / runtime / name).read_text())
        live = json.loads((FIXTURES / runtime / "live" / name).read_text())
        _agree(_shape(source), _shape(live), f"{runtime}/{name}")


@pytest.mark.parametrize("runtime", BOTH)
def test_streams_have_the_live_order_and_chunk_shape(runtime: str) -> None:
    source, live = _events(FIXTURES / runtime), _events(FIXTURES / runtime / "live")
    order = [[k for k, _ in itertools.groupby(map(_kind, evs))] for evs in (source, live)]
    assert order[0] == order[1], f"{runtime}: event order differs (source, live): {order}"
    for kind in ("delta", "finish", "usage"):
        s = {p: t for e in source if _kind(e) == kind for p, t in _shape(e).items()}
        lv = {p: t for e in live if _kind(e) == kind for p, t in _shape(e).items()}
        _agree(s, lv, f"{runtime} {kind} chunks")


@pytest.mark.parametrize("runtime", BOTH)
def test_errors_and_health_have_the_live_shape(runtime: str) -> None:
    source, live = load_recording(FIXTURES / runtime), load_recording(FIXTURES / runtime / "live")
    assert (source.health_path, source.ready_status, source.ready_body, source.loading_status) == (
        live.health_path, live.ready_status, live.ready_body, live.loading_status)
    s_err, l_err = source.errors["unknown_model"], live.errors["unknown_model"]
    assert s_err.status == l_err.status, f"{runtime}: unknown-model status"
    _agree(_shape(json.loads(s_err.body)), _shape(json.loads(l_err.body)), f"{runtime} error body")


def _families(text: str) -> dict[str, str]:
    return {line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE ")}


@pytest.mark.parametrize("runtime", BOTH)
def test_metric_families_exist_live_with_the_same_type(runtime: str) -> None:
    source = _families((FIXTURES / runtime / "metrics.txt").read_text())
    live = _families((FIXTURES / runtime / "live" / "metrics.txt").read_text())
    missing = sorted(set(source) - set(live))
    assert not missing, f"{runtime}: metric families the live runtime does not export: {missing}"
    assert {k: source[k] for k in source} == {k: live[k] for k in source}
