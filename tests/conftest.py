from __future__ import annotations

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
