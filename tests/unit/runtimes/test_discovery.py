"""Which name an existing endpoint is asked for (GET /v1/models), and when it is usable."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferplane.runtimes.discovery import Served, match_model, parse_model_list

FIXTURES = Path(__file__).parents[2] / "fixtures"


def test_a_recorded_vllm_model_list_parses() -> None:
    served = parse_model_list((FIXTURES / "vllm" / "models.json").read_bytes())
    assert served == Served(("smollm2",), "vllm")


@pytest.mark.parametrize("body", [b"nope", b'{"models": []}', b"[]"])
def test_what_is_not_a_model_list_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_model_list(body)


@pytest.mark.parametrize(("ids", "wanted", "model", "ambiguous"), [
    (("smollm2-vllm",), None, "smollm2-vllm", False),       # one model: that one
    (("a", "remote-llama"), None, "remote-llama", False),   # several, one is the deployment's name
    (("a", "b"), None, None, True),                         # several, none chosen: refuse
    ((), None, None, False),                                # lists nothing: not ready
    (("a", "b"), "b", "b", False),                          # chosen and served
    (("a",), "b", None, False),                             # chosen and not served: not ready
])
def test_match_rule(ids: tuple[str, ...], wanted: str | None, model: str | None, ambiguous: bool) -> None:
    m = match_model(Served(ids), deployment="remote-llama", wanted=wanted)
    assert (m.model, m.ambiguous) == (model, ambiguous)
    assert bool(m.problem) == (model is None)
    if ambiguous:
        assert "a, b" in m.problem and "upstream_model" in m.problem
