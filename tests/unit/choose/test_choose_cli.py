"""`inferplane choose` on the command line: dry runs and argument errors (nothing is launched)."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferplane.cli import main


def test_dry_run_prints_reasons_candidates_and_duration(tiny_gguf: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["choose", "--model", str(tiny_gguf), "--runtimes", "embedded,trtllm,mlc",
                 "--settings", "embedded:parallel=1,4", "--requests", "6", "--concurrency", "2",
                 "--slo", "ttft_p95=1s,tpot_p95=100ms", "--output-dir", str(tmp_path / "out"), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "TensorRT-LLM needs an NVIDIA GPU" in out
    assert "MLC-LLM needs a GPU" in out
    assert "embedded llama.cpp [parallel=1]" in out and "embedded llama.cpp [parallel=4]" in out
    assert "Expected duration" in out and "ttft_p95<=1000ms" in out
    assert "Dry run: nothing was launched." in out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["--slo", "latency=1s"], "bad SLO"),
    (["--runtimes", "nope"], "unknown runtime"),
    (["--runtimes", "embedded", "--settings", "vllm:dtype=float32"], "not considered"),
    (["--settings", "embedded:colour=blue"], "bad setting"),
    (["--price", "cpu=free"], "bad --price"),
    (["--requests", "0"], "must be >= 1"),
])
def test_bad_arguments_exit_2_with_the_reason(tiny_gguf: Path, argv: list[str], message: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["choose", "--model", str(tiny_gguf), "--dry-run", *argv]) == 2
    assert message in capsys.readouterr().err


def test_unreadable_model_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"nope")
    assert main(["choose", "--model", str(bad), "--dry-run"]) == 2
    assert "not a GGUF file" in capsys.readouterr().err


def test_dry_run_with_an_access_log_plans_its_requests(tiny_gguf: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import orjson

    log = tmp_path / "access.jsonl"
    lines = [{"ts": 100.0 + i, "request_id": f"r{i}", "prefix": "", "deployment": "m", "prompt_bytes": 800,
              "prompt_tokens": 200, "completion_tokens": 40} for i in range(7)]
    log.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    code = main(["choose", "--model", str(tiny_gguf), "--runtimes", "embedded", "--workload", f"trace:{log}",
                 "--output-dir", str(tmp_path / "out"), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0, out
    flat = "".join(out.split())  # however the console wrapped it
    assert "".join(f"trace:{log}: 7 requests at their recorded arrival times".split()) in flat
    assert "mean200in/40outtokens" in flat


def test_a_workload_that_is_not_one_exits_2(tiny_gguf: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["choose", "--model", str(tiny_gguf), "--dry-run", "--workload", "weather"]) == 2
    assert "unknown workload" in capsys.readouterr().err
    assert main(["choose", "--model", str(tiny_gguf), "--dry-run", "--workload",
                 f"trace:{tmp_path / 'missing.jsonl'}"]) == 2
    assert "cannot read" in capsys.readouterr().err
