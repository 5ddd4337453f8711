"""bench against a target that cannot work: one line with the server's own message, exit 2, no results."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import free_port, http_get

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).parents[3]


def _bench(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "inferplane", "bench", "--requests", "4", "--concurrency", "1",
                           "--workload", "synthetic", *argv], capture_output=True, text=True, timeout=90)


@pytest.fixture(scope="module")
def vllm_fake() -> Iterator[str]:
    """The vLLM replay fake serving 'smollm2': other names get vLLM's recorded 404."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests/fakes/replay_runtime.py"), str(ROOT / "tests/fixtures/vllm"),
                             "vllm", "--port", str(port), "--served-model-name", "smollm2"])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if http_get(url + "/v1/models", timeout=1)[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


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
