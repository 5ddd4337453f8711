from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import ServeProcess, alive, free_port, http_get, start_serve


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One `inferplane serve` of the default model for the whole session (4 slots)."""
    tmp = tmp_path_factory.mktemp("served")
    sp = start_serve(["--max-body-bytes", "200000", "--parallel", "4"], tmp)
    try:
        yield sp
    finally:
        pids = sp.runtime_pids()
        code = sp.stop()
        assert code == 0, sp.log()

        assert not [p for p in pids if alive(p)], f"orphans left: {pids}"


@pytest.fixture
def fakes() -> Iterator[Callable[[str], str]]:
    """Starts tests/fake_upstream.py servers: ``fakes(mode) -> base URL``; ``fakes.stop(url)``."""
    fake = Path(__file__).parent / "fake_upstream.py"
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(mode: str) -> str:
        port = free_port()
        p = subprocess.Popen([sys.executable, str(fake), str(port), mode])
        url = f"http://127.0.0.1:{port}"
        procs[url] = p
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if http_get(url + "/health", timeout=1)[0] == 200:
                    return url
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("fake upstream did not start")

    def stop(url: str) -> None:
        procs[url].terminate()
        procs[url].wait(10)

    start.stop = stop  # type: ignore[attr-defined]
    yield start
    for p in procs.values():
        if p.poll() is None:
            p.terminate()
            p.wait(10)


@pytest.fixture
def fake_server() -> Iterator[Callable[..., str]]:
    """``fake_server(ttft_s=0.2, itl_s=0.02, ...)`` starts one and returns its base URL."""
    procs: list[subprocess.Popen[str]] = []

    def start(**opts: object) -> str:
        cmd = [sys.executable, "-m", "inferplane.bench.fake_server", "--port", "0"]
        for key, value in opts.items():
            flag = "--" + key.replace("_", "-")
            cmd += [flag] if value is True else [flag, str(value)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY "), f"fake server did not start: {line!r}"
        return line.split()[1]

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def vllm_fake() -> Iterator[str]:
    """The vLLM replay fake serving 'smollm2' (other model names get vLLM's recorded 404)."""
    root = Path(__file__).parents[1]
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(root / "tests/fakes/replay_runtime.py"), str(root / "tests/fixtures/vllm"),
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
