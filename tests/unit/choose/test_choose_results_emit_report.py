"""Results from bench outcomes, their JSON form, the emitted deployment file, the reports."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from inferplane.bench.analysis import analyze
from inferplane.bench.records import RequestRecord
from inferplane.bench.runner import LoadConfig, LoadResult
from inferplane.bench.slo import parse_slos
from inferplane.choose.compat import Verdict
from inferplane.choose.emit import EmitError, deployment_document, write_deployment
from inferplane.choose.hardware import GiB, Hardware
from inferplane.choose.model_info import ModelInfo
from inferplane.choose.plan import Candidate, WorkloadSpec
from inferplane.choose.rank import rank
from inferplane.choose.report import ChooseReport, render_html, summary_dict, write_files
from inferplane.choose.results import CandidateResult, from_outcome
from inferplane.config.models import DeploymentConfig, load_config

MS = 1_000_000


def record(i: int, ttft_ms: int, ok: bool = True) -> RequestRecord:
    t0 = i * 1000 * MS
    first = t0 + ttft_ms * MS
    chunks = tuple(first + k * 20 * MS for k in range(5))
    return RequestRecord(index=i, ok=ok, stream=True, t_sched_ns=t0, t_send_ns=t0, t_close_ns=chunks[-1] + MS,
                         t_first_ns=first if ok else None, t_last_ns=chunks[-1] if ok else None,
                         chunk_times_ns=chunks if ok else (), osl=5 if ok else None,
                         osl_source="usage" if ok else "none", osl_client=5, isl=10, isl_source="usage",
                         error_class=None if ok else "http_500")


def candidate() -> Candidate:
    dep = DeploymentConfig.model_validate({"name": "smollm2", "runtime": "embedded", "model": "smollm2",
                                           "replicas": 1, "max_concurrent_sequences": 4})
    return Candidate("embedded-parallel4", "embedded", (("parallel", "4"),), dep, "cpu")


def test_from_outcome_keeps_observed_slo_values_with_failures_as_inf() -> None:
    recs = (*(record(i, ttft) for i, ttft in enumerate((100, 200, 300, 2000))), record(4, 0, ok=False))
    slos = parse_slos("ttft_p50=250ms,tpot_p95=50ms")
    out = analyze("x", LoadConfig(concurrency=1), LoadResult(recs, (1.0,), 5.0), slos)
    r = from_outcome(candidate(), out, slos, startup_s=1.5, report_dir="/tmp/x")
    assert (r.status, r.n_requests, r.n_ok, r.startup_s) == ("ok", 5, 4, 1.5)
    ttft, tpot = r.slos
    assert ttft.observed_s == pytest.approx(0.3) and not ttft.met  # p50 of 0.1, 0.2, 0.3, 2.0, inf
    assert tpot.observed_s == math.inf and not tpot.met  # the failed request counts as +inf
    assert r.goodput_rps == pytest.approx(out.metrics.goodput_rps)
    assert r.ttft_p95_s == pytest.approx(out.metrics.ttft.p95)


def test_result_json_round_trip(make_result) -> None:
    r = make_result("a", 1.5, slos=[("ttft_p95<=1000ms", 1.0, math.inf)], attainment=0.5)
    back = CandidateResult.from_dict(r.to_dict())
    assert back == r
    assert r.to_dict()["slos"][0]["observed_s"] == "inf"


def test_deployment_file_runs_as_is(tmp_path: Path, make_result) -> None:
    ranking = rank([make_result("e4", 2.0), make_result("e1", 1.0)])
    path = tmp_path / "deploy.yaml"
    write_deployment(path, ranking, name="smollm2", workload="w", slos="s")
    text = path.read_text()
    assert text.startswith("# Written by `inferplane choose`")
    assert "Run it: inferplane serve --config THIS_FILE" in text
    cfg = load_config(path)
    (d,) = cfg.deployments
    assert (d.name, d.runtime, d.model) == ("smollm2", "embedded", "m.gguf")
    assert "ready_timeout_s" not in yaml.safe_load(text)["deployments"][0]


def test_fallback_is_a_second_deployment_named_by_the_winner(make_result) -> None:
    ranking = rank([make_result("e4", 2.0), make_result("v", 1.0, runtime="vllm")])
    doc, cfg = deployment_document(ranking, name="smollm2", fallback=True)
    assert [d.name for d in cfg.deployments] == ["smollm2", "smollm2-fallback"]
    assert cfg.deployments[0].fallback == "smollm2-fallback"
    assert cfg.deployments[1].runtime == "vllm"
    assert list(doc["deployments"][0])[:3] == ["name", "runtime", "model"]


def test_no_winner_no_file(tmp_path: Path, make_result) -> None:
    with pytest.raises(EmitError, match="no candidate completed"):
        write_deployment(tmp_path / "d.yaml", rank([make_result("x", 1.0, status="failed")]), name="m")
    assert not (tmp_path / "d.yaml").exists()


def test_reports_show_verdict_ranking_and_compatibility(tmp_path: Path, make_result) -> None:
    model = ModelInfo("/m/s.gguf", "gguf", "llama", "S", 135_000_000, "q4_1", None, 8192, 98_000_000)
    verdicts = (Verdict("embedded", True, model=model, device="cpu", memory_need_bytes=GiB, memory_have_bytes=GiB),
                Verdict("trtllm", False, ("TensorRT-LLM needs an NVIDIA GPU",)))
    ranking = rank([make_result("e<4>", 2.0, slos=[("ttft_p95<=1000ms", 1.0, 2.0)])])
    rep = ChooseReport((model,), Hardware(cores=2), verdicts, (), WorkloadSpec(), ("ttft_p95<=1000ms",), ranking,
                       complete=False)
    html = render_html(rep, tmp_path)
    assert "No candidate meets the SLOs" in html and "TensorRT-LLM needs an NVIDIA GPU" in html
    assert "e&lt;4&gt;" in html and "<script" not in html and "Interrupted" in html
    data = summary_dict(rep)
    assert data["kind"] == "inferplane-choose" and data["complete"] is False
    assert data["ranking"]["entries"][0]["result"]["id"] == "e<4>"
    paths = write_files(rep, tmp_path / "out")
    assert paths["json"].exists() and paths["html"].exists()
