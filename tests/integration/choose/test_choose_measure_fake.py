"""The measuring loop against a fake runtime endpoint, through a real `inferplane serve` child:
results saved as each candidate completes, serve stopped after each, and on an interrupt the
running candidate is stopped with nothing left behind and earlier results kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers import alive
from inferplane.bench.slo import parse_slos
from inferplane.choose.measure import MeasureConfig, load_results, measure_all
from inferplane.choose.plan import Candidate, WorkloadSpec
from inferplane.choose.rank import rank
from inferplane.config.models import DeploymentConfig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def fake_candidate(cid: str, url: str) -> Candidate:
    dep = DeploymentConfig.model_validate({"name": "fake-model", "runtime": "openai", "replicas": 0,
                                           "endpoints": [{"url": url}], "ready_timeout_s": 30})
    return Candidate(cid, "openai", (("endpoint", cid),), dep, "cpu")


def serve_pids(out_dir: Path) -> list[int]:
    """`inferplane serve` processes started for this output folder (found by their config path)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(out_dir) in cmd and "serve" in cmd and alive(int(entry.name)):
                pids.append(int(entry.name))
    return pids


def test_each_candidate_is_measured_saved_and_stopped(fake_server, tmp_path: Path) -> None:
    fast = fake_server(ttft_s=0.02, itl_s=0.005, output_len=8)
    slow = fake_server(ttft_s=0.3, itl_s=0.02, output_len=8)
    cfg = MeasureConfig(out_dir=tmp_path, workload=WorkloadSpec(requests=6, concurrency=2, input_len=16,
                                                                output_len=8, warmup_requests=1),
                        slos=parse_slos("ttft_p95=150ms"), nonce="t")
    said: list[str] = []
    results = measure_all([fake_candidate("fast", fast), fake_candidate("slow", slow)], cfg, said.append)
    assert [(r.id, r.status, r.n_ok) for r in results] == [("fast", "ok", 6), ("slow", "ok", 6)]
    assert load_results(tmp_path) == results
    assert results[0].meets_slos and not results[1].meets_slos
    assert results[0].startup_s is not None and results[0].startup_s < 30
    assert (tmp_path / "runs" / "fast" / "bench" / "report.html").exists()
    assert (tmp_path / "runs" / "fast" / "deploy.yaml").exists()
    assert any("[2/2]" in s for s in said)
    assert serve_pids(tmp_path) == []
    assert rank(results).winner.result.id == "fast"


def test_a_candidate_is_measured_on_a_replayed_access_log(fake_server, tmp_path: Path) -> None:
    """``--workload trace:ACCESS_LOG``: the candidate gets the log's requests at its offsets."""
    import orjson

    log = tmp_path / "access.jsonl"
    offsets = [0.0, 0.4, 0.5, 1.2, 1.3]
    log.write_bytes(b"".join(orjson.dumps({
        "ts": 1_700_000_000.0 + t, "request_id": f"r{i}", "prefix": "", "deployment": "m", "prompt_bytes": 300,
        "prompt_tokens": 60, "completion_tokens": 8, "status": 200}) + b"\n" for i, t in enumerate(offsets)))
    url = fake_server(ttft_s=0.01, itl_s=0.005, output_len=8)
    spec = WorkloadSpec(kind=f"trace:{log}", requests=5, warmup_requests=0)
    (r,) = measure_all([fake_candidate("fast", url)], MeasureConfig(out_dir=tmp_path / "out", workload=spec,
                                                                    nonce="t"), lambda _m: None)
    assert (r.status, r.n_ok, r.n_requests) == ("ok", 5, 5)
    sent = [json.loads(x) for x in (tmp_path / "out" / "runs" / "fast" / "bench" / "requests.jsonl")
            .read_text().splitlines()]
    sched = sorted(x["t_sched_ns"] for x in sent)
    assert [round((t - sched[0]) / 1e9, 1) for t in sched] == offsets
    assert serve_pids(tmp_path) == []


def test_a_candidate_that_cannot_start_is_a_failed_result(tmp_path: Path) -> None:
    dead = "http://127.0.0.1:9"  # nothing listens: never ready
    c = fake_candidate("dead", dead)
    c = Candidate(c.id, c.runtime, c.settings, c.deployment.model_copy(update={"ready_timeout_s": 2.0}), "cpu")
    cfg = MeasureConfig(out_dir=tmp_path, workload=WorkloadSpec(requests=2, concurrency=1, warmup_requests=0))
    (r,) = measure_all([c], cfg, lambda _m: None)
    assert r.status == "failed" and "not ready" in r.error
    assert serve_pids(tmp_path) == []


SCRIPT = textwrap.dedent("""
    import signal
    import sys
    from pathlib import Path
    # Ctrl-C as a terminal delivers it, even when the test itself runs in the background (a shell
    # starts background jobs with SIGINT ignored, and Python keeps an inherited SIG_IGN)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from inferplane.choose.cli import _sigterm_as_interrupt
    from inferplane.choose.measure import MeasureConfig, measure_all
    from inferplane.choose.plan import Candidate, WorkloadSpec
    from inferplane.config.models import DeploymentConfig

    out, fast, slow = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    def cand(cid, url):
        dep = DeploymentConfig.model_validate({"name": "m", "runtime": "openai", "replicas": 0,
                                               "endpoints": [{"url": url}]})
        return Candidate(cid, "openai", (), dep, "cpu")
    cfg = MeasureConfig(out_dir=out, workload=WorkloadSpec(requests=40, concurrency=1, input_len=16, output_len=8,
                                                           warmup_requests=0))
    with _sigterm_as_interrupt():
        results = measure_all([cand("first", fast), cand("second", slow), cand("third", fast)], cfg, print)
    print("STATUSES", [r.status for r in results], flush=True)
    sys.exit(130 if len(results) < 3 or results[-1].status == "interrupted" else 0)
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_the_running_candidate_and_keeps_results(fake_server, tmp_path: Path, sig: int) -> None:
    fast = fake_server(ttft_s=0.01, itl_s=0.002, output_len=4)
    slow = fake_server(ttft_s=0.5, itl_s=0.1, output_len=8)  # 40 sequential requests: ~50 s
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path), fast, slow], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not serve_pids(tmp_path / "runs" / "second"):
        time.sleep(0.2)
    running = serve_pids(tmp_path / "runs" / "second")
    assert running, "the second candidate never started"
    time.sleep(2.0)  # let it get into the measured run
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "STATUSES ['ok', 'interrupted']" in out
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [(d["id"], d["status"]) for d in lines] == [("first", "ok"), ("second", "interrupted")]
    assert not [p for p in running if alive(p)] and serve_pids(tmp_path) == []
