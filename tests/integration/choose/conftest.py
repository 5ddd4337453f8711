"""Fixtures for choose's integration tests: a fake OpenAI server process on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest


@pytest.fixture
def fake_openai() -> Iterator[Callable[..., str]]:
    """``fake_openai(ttft_s=0.2, itl_s=0.02, ...)`` starts ``inferplane.bench.fake_server``; returns its URL."""
    procs: list[subprocess.Popen[str]] = []

    def start(**opts: object) -> str:
        cmd = [sys.executable, "-m", "inferplane.bench.fake_server", "--port", "0"]
        for key, value in opts.items():
            cmd += ["--" + key.replace("_", "-"), str(value)]
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
