"""The usage of a whole answer, read from the body the relay parsed, is what a byte scan of it finds."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from inferplane.gateway.relay import usage_in, usage_of
from inferplane.observability.observer import Usage

FIXTURES = Path(__file__).parents[2] / "fixtures"


def _has_usage(path: Path) -> bool:
    obj = orjson.loads(path.read_bytes())
    return isinstance(obj, dict) and isinstance(obj.get("usage"), dict)


BODIES = sorted(p for p in FIXTURES.rglob("*.json") if b'"usage"' in p.read_bytes() and _has_usage(p))


def test_there_are_recorded_bodies_with_usage() -> None:
    assert len(BODIES) >= 5
    assert any(b'"cached_tokens"' in p.read_bytes() for p in BODIES)


@pytest.mark.parametrize("path", BODIES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_recorded_bodies_agree_with_the_byte_scan(path: Path) -> None:
    body = path.read_bytes()
    assert usage_in(orjson.loads(body)) == usage_of(body)


@pytest.mark.parametrize(("obj", "usage"), [
    ({"usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}}, Usage(12, 8, None)),
    ({"usage": {"prompt_tokens": 37, "total_tokens": 51, "completion_tokens": 14,
                "prompt_tokens_details": {"cached_tokens": 36}}}, Usage(37, 14, 36)),
    ({"usage": {"prompt_tokens": 5, "total_tokens": 5}}, Usage(5, None, None)),  # embeddings
    ({"usage": {"input_tokens": 5, "output_tokens": 2}}, None),  # a Responses object: not chat's usage
    ({"usage": None}, None),
    ({"choices": []}, None),
    ([1, 2], None),
])
def test_usage_in_a_parsed_body(obj: object, usage: Usage | None) -> None:
    assert usage_in(obj) == usage
