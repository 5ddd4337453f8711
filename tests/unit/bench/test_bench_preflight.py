"""bench before the run: the ShareGPT output cap, and the duration estimate from one probe request."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from inferplane.bench import cli as bench_cli
from inferplane.bench.preflight import Preflight, estimate_s


def _args(tmp_path: Path, **kw: object) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    bench_cli.add_arguments(p)
    convs = [{"id": f"c{i}", "conversations": [{"from": "human", "value": f"question number {i} about something"},
                                              {"from": "gpt", "value": "reply " * 600}]} for i in range(5)]
    f = tmp_path / "sg.json"
    f.write_text(json.dumps(convs))
    args = p.parse_args(["--dataset-path", str(f)])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def test_sharegpt_replies_are_capped_by_default(tmp_path: Path) -> None:
    work = bench_cli._workload(_args(tmp_path), 5, 0, "n")
    assert [r.max_tokens for r in work.requests] == [bench_cli.SHAREGPT_DEFAULT_MAX_TOKENS] * 5
    assert work.params["max_tokens_cap"] == bench_cli.SHAREGPT_DEFAULT_MAX_TOKENS
    own = bench_cli._workload(_args(tmp_path, max_tokens=1000), 5, 0, "n")
    assert all(r.max_tokens > 256 for r in own.requests)  # --max-tokens: the user's cap


def test_estimate_scales_with_requests_tokens_and_parallelism() -> None:
    probe = Preflight(None, seconds=0.5, completion_tokens=16)  # ~32 tok/s for one request
    assert estimate_s(probe, requests=200, mean_output_tokens=256, parallel=2) == pytest.approx(800.0)
    assert estimate_s(probe, requests=10, mean_output_tokens=256, parallel=1) == pytest.approx(80.0)
    assert estimate_s(Preflight(None, 0.5, 0), requests=10, mean_output_tokens=256, parallel=1) is None
