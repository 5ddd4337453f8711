"""A short ShareGPT bench against the real embedded runtime behind ``inferplane serve``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(400)]

READY_TIMEOUT_S = 120.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """``inferplane serve`` on a free port, ready; yields its base URL."""
    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "inferplane", "serve", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"inferplane serve exited with {proc.returncode}: {(tmp_path / 'serve.log').read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(url + "/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"inferplane serve not ready in {READY_TIMEOUT_S:.0f} s: {(tmp_path / 'serve.log').read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def test_sharegpt_bench_against_embedded_runtime(served: str, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    cmd = [
        sys.executable, "-m", "inferplane.bench", "--url", served, "--workload", "sharegpt", "--requests", "8",
        "--concurrency", "2", "--max-tokens", "32", "--output-dir", str(out), "--no-progress",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env(), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["provenance"]["dataset_sha256"]
    target = summary["provenance"]["target"]
    assert target["via_gateway"] is True and target["runtime"] == "embedded"  # the replicas', not "inferplane"
    m = summary["runs"][0]["metrics"]
    assert m["n_ok"] == 8 and m["n_failed"] == 0
    assert 0 < m["ttft"]["p50"] < 60
    assert 0 < m["e2e"]["p50"] < 120 and m["ttft"]["p50"] <= m["e2e"]["p50"]
    assert 1 <= m["osl"]["mean"] <= 32 and m["isl"]["mean"] > 1
    if m["tpot"]["n"]:
        assert 0 < m["tpot"]["p50"] < 5
        assert m["tokens_per_chunk"]["mean"] >= 0.5
    assert m["output_throughput"] > 0 and m["request_throughput"] > 0
    assert 0 < m["concurrency_mean"] <= 2.0 + 1e-6 and m["concurrency_peak"] <= 2
    assert set(m["tokens"]["osl_sources"]) <= {"usage", "estimate"}
