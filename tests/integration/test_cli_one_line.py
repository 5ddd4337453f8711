"""Error lines reach the user as one line, whatever the terminal width or the length of a path in them.

Each case runs the real command line in a fresh process with ``COLUMNS=20`` and a model path
several hundred characters long, once with stderr piped and once on a pseudo-terminal.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _long_dir(tmp_path: Path) -> Path:
    d = tmp_path
    for i in range(4):
        d = d / (f"level{i}-" + "x" * 60)
    d.mkdir(parents=True)
    return d


def _bad_gguf(tmp_path: Path) -> Path:
    bad = _long_dir(tmp_path) / "bad.gguf"
    bad.write_bytes(b"nope")
    return bad


def _env() -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "20", "LINES": "10"}
    env.pop("NO_COLOR", None)
    return env


def _piped(argv: list[str]) -> tuple[int, str]:
    r = subprocess.run([sys.executable, "-m", "inferplane", *argv], capture_output=True, text=True,
                       env=_env(), timeout=120, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr


def _on_a_terminal(argv: list[str]) -> tuple[int, str]:
    """Run with stdout and stderr on a 20-column pseudo-terminal; returns the text without colours."""
    main_fd, child_fd = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 10, 20, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "inferplane", *argv], stdin=subprocess.DEVNULL,
                            stdout=child_fd, stderr=child_fd, env=_env())
    os.close(child_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main_fd], [], [], 0.5)
        if ready:
            try:
                data = os.read(main_fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(main_fd)
    code = proc.wait(30)
    return code, ANSI.sub("", b"".join(chunks).decode(errors="replace")).replace("\r\n", "\n")


def _line_with(text: str, *parts: str) -> str | None:
    return next((ln for ln in text.splitlines() if all(p in ln for p in parts)), None)


RUNNERS = [pytest.param(_piped, id="piped"), pytest.param(_on_a_terminal, id="terminal")]


@pytest.mark.parametrize("run", RUNNERS)
def test_choose_unreadable_model_error_is_one_line(run, tmp_path: Path) -> None:
    bad = _bad_gguf(tmp_path)
    code, text = run(["choose", "--model", str(bad), "--dry-run"])
    assert code == 2, text
    assert _line_with(text, "error:", str(bad), "not a GGUF file"), text


@pytest.mark.parametrize("run", RUNNERS)
def test_bench_unknown_workload_error_is_one_line(run, tmp_path: Path) -> None:
    code, text = run(["bench", "--url", "http://127.0.0.1:9", "--model", "m", "--workload", "nope",
                      "--output-dir", str(tmp_path / "out")])
    assert code == 2, text
    assert _line_with(text, "error:", "unknown workload 'nope'", "sharegpt, synthetic, shared-prefix"), text
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("run", RUNNERS)
def test_serve_missing_model_error_is_one_line(run, tmp_path: Path) -> None:
    missing = _long_dir(tmp_path) / "missing.gguf"
    code, text = run(["serve", "--model", str(missing), "--port", "9"])
    assert code == 2, text
    assert _line_with(text, "error:", str(missing)), text


@pytest.mark.parametrize("run", RUNNERS)
def test_config_validate_error_is_one_line(run, tmp_path: Path) -> None:
    f = _long_dir(tmp_path) / "deploy.yaml"
    f.write_text("deployments:\n  - name: m\n    model: smollm2\n    replicas: -3\n")
    code, text = run(["config", "validate", str(f)])
    assert code == 2, text
    assert _line_with(text, "error:", str(f)), text
    assert _line_with(text, "deployments.0.replicas", "greater than or equal to 0"), text
