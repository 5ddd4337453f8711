"""`inferplane serve` as a process: startup errors, supervision and restarts, clean stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from helpers import alive, start_serve

pytestmark = pytest.mark.integration

MSGS = [{"role": "user", "content": "hi"}]


def _run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "inferplane", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_missing_model_file_is_a_clear_error() -> None:
    r = _run(["serve", "--model", "/nonexistent/model.gguf", "--port", "0"])
    assert r.returncode == 2
    assert "model file not found: /nonexistent/model.gguf" in r.stderr


def test_unreadable_model_file_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "secret.gguf"
    f.write_bytes(b"GGUF")
    f.chmod(0)
    if os.access(f, os.R_OK):  # root reads anything: make it a folder-less dangling symlink instead
        f.unlink()
        f.symlink_to(tmp_path / "gone.gguf")
    r = _run(["serve", "--model", str(f), "--port", "0"])
    assert r.returncode == 2
    assert "model file" in r.stderr and str(f) in r.stderr


def test_a_file_that_is_not_a_model_is_refused_before_anything_starts(tmp_path: Path) -> None:
    f = tmp_path / "junk.gguf"
    f.write_bytes(b"this is not a gguf file" * 100)
    r = _run(["serve", "--model", str(f), "--port", "0", "--log-dir", str(tmp_path / "logs")])
    assert r.returncode == 2
    assert f"cannot load model file {f}: not a GGUF file" in r.stderr
    assert "gateway listening" not in r.stderr and not (tmp_path / "logs").exists()


def test_a_damaged_model_says_why_once_with_the_log_path_and_no_traceback(tmp_path: Path) -> None:
    from inferplane.models import ModelStore

    good = ModelStore().resolve("smollm2", fetch=False)  # scripts/test.sh pulls it before the tests
    f = tmp_path / "cut.gguf"
    with good.open("rb") as src:
        f.write_bytes(src.read(10_000_000))  # the header is whole, the weights are cut off
    r = _run(["serve", "--model", str(f), "--port", "0", "--ready-timeout", "60",
              "--log-dir", str(tmp_path / "logs")], timeout=120)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    first = next(i for i, ln in enumerate(lines) if "exited with code" in ln)
    assert f"cannot load model file {f}: llama.cpp could not load it" in lines[first]
    assert f"log: {tmp_path / 'logs' / 'cut-1.log'}" in lines[first + 1]
    assert r.stderr.count("exited with code") == 1 and "Traceback" not in r.stderr


def test_bad_config_file_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("deployments:\n  - name: a\n    replicas: -1\n")
    r = _run(["serve", "--config", str(cfg)])
    assert r.returncode == 2
    assert "deployments.0.replicas" in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_leaves_no_runtime_process(tmp_path: Path, sig: int) -> None:
    sp = start_serve(["--parallel", "2"], tmp_path)
    pids = sp.runtime_pids()
    assert pids, "the runtime should run in a child process"
    assert sp.stop(sig) == 0
    time.sleep(0.2)
    assert not [p for p in pids if alive(p)]


def test_gateway_killed_hard_takes_its_runtime_with_it(tmp_path: Path) -> None:
    sp = start_serve(["--parallel", "2"], tmp_path)
    pids = sp.runtime_pids()
    sp.stop(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and [p for p in pids if alive(p)]:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)]


def test_a_crashed_runtime_is_restarted(tmp_path: Path) -> None:
    sp = start_serve(["--parallel", "2"], tmp_path)
    try:
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=60)
        assert client.chat.completions.create(model="smollm2", messages=MSGS, max_tokens=2).choices
        (before,) = sp.endpoints()
        (pid,) = sp.runtime_pids()
        os.kill(pid, signal.SIGKILL)
        # while it is down, requests fail fast and clearly (no hang, no 500)
        time.sleep(0.3)
        try:
            client.chat.completions.create(model="smollm2", messages=MSGS, max_tokens=2)
        except openai.APIStatusError as exc:
            assert exc.status_code in (502, 503)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            (ep,) = sp.endpoints()
            if ep["ready"] and ep["url"] != before["url"]:
                break
            time.sleep(0.2)
        assert ep["ready"], sp.log()
        assert client.chat.completions.create(model="smollm2", messages=MSGS, max_tokens=2).choices
        assert sp.runtime_pids() and pid not in sp.runtime_pids()
    finally:
        assert sp.stop() == 0


def test_a_hung_replica_leaves_the_pool_and_returns_when_it_answers_again(tmp_path: Path) -> None:
    import yaml

    cfg = tmp_path / "two.yaml"
    cfg.write_text(yaml.safe_dump({"gateway": {"scrape_interval_s": 0.3}, "deployments": [
        {"name": "smollm2", "replicas": 2, "max_concurrent_sequences": 1, "threads": 1}]}))
    sp = start_serve(["--config", str(cfg)], tmp_path)
    deadline = time.monotonic() + 180  # /ready needs one replica; a loaded machine may take a while for the other
    while time.monotonic() < deadline and not all(e["ready"] for e in sp.endpoints()):
        time.sleep(0.2)
    victim = sp.endpoints()[0]
    try:
        assert victim["ready"] and victim["pid"], sp.endpoints()
        os.kill(victim["pid"], signal.SIGSTOP)  # alive, but answers nothing

        def state() -> dict:
            return next(e for e in sp.endpoints() if e["id"] == victim["id"])

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and state()["ready"]:
            time.sleep(0.1)
        assert not state()["ready"]
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=30)
        for _ in range(3):
            raw = client.chat.completions.with_raw_response.create(model="smollm2", messages=MSGS, max_tokens=2)
            assert raw.headers["x-inferplane-endpoint"] != victim["id"]
        os.kill(victim["pid"], signal.SIGCONT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not state()["ready"]:
            time.sleep(0.1)
        assert state()["ready"] and state()["pid"] == victim["pid"]  # back, not restarted
    finally:
        if victim["pid"]:
            os.kill(victim["pid"], signal.SIGCONT)
        assert sp.stop() == 0
