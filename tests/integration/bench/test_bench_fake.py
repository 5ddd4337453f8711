"""End to end against the fake server: measured TTFT/TPOT/ICL match the configured delays.

Tolerances are wide (±30%) because the machine may be busy; the fake server sleeps to
absolute deadlines so its own delays do not accumulate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from inferplane.bench.analysis import analyze
from inferplane.bench.client import ClientConfig
from inferplane.bench.runner import LoadConfig, run_load
from inferplane.bench.workloads import synthetic

FakeFactory = Callable[..., str]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TTFT, ITL, OSL = 0.2, 0.02, 12


def _within(value: float, expected: float, tol: float = 0.3) -> bool:
    return abs(value - expected) <= tol * expected


@pytest.mark.parametrize(
    "load",
    [LoadConfig(concurrency=4), LoadConfig(rate=8.0, arrival="poisson", seed=3)],
    ids=["closed", "open"],
)
def test_measured_latencies_match_configured(fake_server: FakeFactory, load: LoadConfig) -> None:
    url = fake_server(ttft_s=TTFT, itl_s=ITL, output_len=OSL)
    work = synthetic(16, input_len=32, output_len=OSL, nonce="t")
    res = run_load(work, ClientConfig(base_url=url, model="fake-model"), load)
    m = analyze("x", load, res).metrics
    assert m.n_ok == 16 and m.n_failed == 0
    assert _within(m.ttft.p50, TTFT), m.ttft
    assert _within(m.tpot.p50, ITL), m.tpot
    assert _within(m.icl.p50, ITL), m.icl
    assert _within(m.e2e.p50, TTFT + (OSL - 1) * ITL), m.e2e
    assert m.tokens.osl_sources == {"usage": 16} and m.tokens_per_chunk.mean == pytest.approx(1.0)
    assert m.osl.mean == OSL
    assert m.schedule_lag.p50 < 0.02
    if load.mode == "open":
        assert m.offered_rps is not None and m.achieved_rps is not None
        assert _within(m.achieved_rps, m.offered_rps, 0.2)
    else:
        assert m.concurrency_peak == 4


def test_multi_token_chunks_tpot_differs_from_icl(fake_server: FakeFactory) -> None:
    url = fake_server(ttft_s=0.1, itl_s=0.04, output_len=16, tokens_per_chunk=4)
    res = run_load(
        synthetic(6, input_len=16, output_len=16),
        ClientConfig(base_url=url, model="m"),
        LoadConfig(concurrency=3),
    )
    m = analyze("x", LoadConfig(concurrency=3), res).metrics
    assert m.tokens_per_chunk.mean == pytest.approx(4.0)
    assert _within(m.icl.p50, 0.04)
    assert _within(m.tpot.p50, 3 * 0.04 / 15)  # 4 chunks: (t_last - t_first) / (OSL - 1)


def test_failures_missing_usage_and_reasoning(fake_server: FakeFactory) -> None:
    url = fake_server(
        ttft_s=0.05, itl_s=0.01, output_len=8, fail_every=4, no_usage=True, reasoning_tokens=2
    )
    load = LoadConfig(concurrency=2)
    res = run_load(
        synthetic(12, input_len=16, output_len=8), ClientConfig(base_url=url, model="m"), load
    )
    out = analyze("x", load, res)
    m = out.metrics
    assert m.n_failed == 3 and m.errors == {"http_500": 3}
    assert (
        m.tokens.osl_sources == {"estimate": 9} and m.osl.mean == 8
    )  # "tok " estimates to 1 token
    assert any("failed" in w for w in out.warnings) and any("estimate" in w for w in out.warnings)
    ok = [r for r in res.records if r.ok]
    # reasoning arrives before the answer; on a loaded box both may come in one read (one timestamp)
    assert all(r.reasoning_chunks == 2 and r.t_first_output_ns >= r.t_first_ns for r in ok)  # type: ignore[operator]


def test_cli_end_to_end_with_two_workers(fake_server: FakeFactory, tmp_path: Path) -> None:
    url = fake_server(ttft_s=0.05, itl_s=0.005, output_len=10)
    out = tmp_path / "res"
    cmd = [
        sys.executable, "-m", "inferplane.bench", "--url", url, "--workload", "synthetic", "--requests", "24",
        "--rate", "30", "--workers", "2", "--input-len", "32", "--output-len", "10", "--warmup", "2",
        "--slo", "ttft_p99=1s", "--output-dir", str(out), "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=50, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    m = summary["runs"][0]["metrics"]
    assert m["n_ok"] == 24 and m["goodput_rps"] > 0
    assert summary["provenance"]["model"] == "fake-model"  # discovered from /v1/models
    assert summary["provenance"]["client_workers"] == 2
    assert len(summary["runs"][0]["client_cpu_pct"]) == 2
    assert {
        json.loads(line)["worker"] for line in (out / "requests.jsonl").read_text().splitlines()
    } == {0, 1}
    assert (out / "report.html").stat().st_size > 5000 and (out / "summary.csv").exists()
    assert "TTFT" in proc.stderr  # summary table printed
