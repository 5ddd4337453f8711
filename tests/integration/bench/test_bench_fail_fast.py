"""bench against a target that cannot work: one line with the server's own message, exit 2, no results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).parents[3]


def _bench(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "inferplane", "bench", "--requests", "4", "--concurrency", "1",
                           "--workload", "synthetic", *argv], capture_output=True, text=True, timeout=90)




def test_a_dead_url_fails_before_the_run(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    r = _bench("--url", url, "--model", "m", "--output-dir", str(tmp_path / "out"))
    assert r.returncode == 2, r.stderr
    (line,) = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert line.startswith("error: cannot reach") and url in line
    assert not (tmp_path / "out").exists()


def test_an_unknown_model_fails_with_the_servers_message(tmp_path: Path, vllm_fake: str) -> None:
    r = _bench("--url", vllm_fake, "--model", "nope", "--output-dir", str(tmp_path / "out"))
    assert r.returncode == 2, r.stderr
    (line,) = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert "answered 404: The model `gpt-4` does not exist." in line  # the recorded vLLM body, as it came
    assert "inf" not in r.stderr and not (tmp_path / "out").exists()
