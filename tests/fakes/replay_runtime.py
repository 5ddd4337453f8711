"""A fake runtime process that replays a recording folder, launched with the runtime's own argv.

Run as ``python tests/fakes/replay_runtime.py FIXTURE_DIR ARGV0 [the runtime's own argv...]``,
normally through a two-line wrapper script that a deployment's ``executable`` points to
(``exec python replay_runtime.py DIR "$0" "$@"``), so the supervisor launches it with
exactly the argv the adapter built. It then:

- writes ``{"argv": [ARGV0, ...], "env": {OLLAMA_*, VLLM_*, MAX_*...}}`` to ``$REPLAY_ARGV_FILE`` (if set);
- finds its port the way the runtime would (``--port``, ``--server-port``, or
  ``OLLAMA_HOST``), its served name (``--served-model-name``, ``--model-name``, ``--alias``) and,
  for MAX, its metrics port (``MAX_SERVE_METRICS_ENDPOINT_PORT``);
- stays closed for ``$REPLAY_LOAD_S`` seconds (default 0.3) like a runtime loading its model, and
  where the recording has a loading status (SGLang: 503) binds at once and answers that meanwhile;
- replays the folder with ``inferplane.bench.fake_server`` (the one fake; its docstring says what is
  served), recorded timing scaled by ``$REPLAY_TIME_SCALE`` (default 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path

from inferplane.bench.fake_recording import load_recording
from inferplane.bench.fake_server import FakeOpenAIServer

RECORDED_ENV = ("OLLAMA_", "PREFIX_CACHING", "VLLM_", "MAX_SERVE_")


def _flag(argv: list[str], *names: str) -> str | None:
    for i, a in enumerate(argv):
        if a in names and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _port(argv: list[str]) -> int:
    p = _flag(argv, "--port", "--server-port", "-p")
    if p is None:
        p = os.environ.get("OLLAMA_HOST", "").rsplit(":", 1)[-1]
    return int(p)


async def _serve(fixtures: Path, argv: list[str], loading_s: float) -> None:
    metrics_port = os.environ.get("MAX_SERVE_METRICS_ENDPOINT_PORT")
    server = FakeOpenAIServer(
        port=_port(argv), recording=str(fixtures), loading_s=loading_s,
        served_model=_flag(argv, "--served-model-name", "--model-name", "--alias"),
        time_scale=float(os.environ.get("REPLAY_TIME_SCALE", "1")),
        metrics_port=int(metrics_port) if metrics_port else None,
    )
    async with server:
        await asyncio.Event().wait()


def main() -> None:
    fixtures, argv = Path(sys.argv[1]), sys.argv[2:]
    record = os.environ.get("REPLAY_ARGV_FILE")
    if record:
        env = {k: v for k, v in os.environ.items() if k.startswith(RECORDED_ENV)}
        Path(record).write_text(json.dumps({"argv": argv, "env": env}))
    load_s = float(os.environ.get("REPLAY_LOAD_S", "0.3"))
    loading_s = 0.0
    if load_recording(fixtures).loading_status:
        loading_s = load_s  # binds at once, answers "loading" meanwhile
    else:
        time.sleep(load_s)  # port closed while "loading", like the real runtime
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(fixtures, argv, loading_s))


if __name__ == "__main__":
    main()
