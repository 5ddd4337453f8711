"""Record an access log from a real `inferplane serve` (the default model) under a shared-prefix
workload, replay it with `inferplane bench --workload trace:LOG`, and compare what the gateway
logged both times: the arrival pattern, the token lengths and the prefix-sharing groups.

Bounds are generous (the box is shared): arrivals within 0.6 s of the recorded offsets, prompt
lengths within 15 %, and the groups exactly.

`bench` sends one short preflight request before its load, and the gateway writes its access log in
batches (every 0.2 s), so a bench that has exited may not be in the log yet: the test waits for the
load's own lines (prompts of over 150 tokens; the probe's is ~30) rather than for a count of lines.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from helpers import start_serve

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

N = 12


def _bench(url: str, out: Path, *workload: str) -> None:
    cmd = [sys.executable, "-m", "inferplane", "bench", "--url", url, "--model", "smollm2", "--ignore-eos",
           "--no-progress", "--output-dir", str(out), *workload]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stdout + done.stderr


def _lines(path: Path, after: float = 0.0, before: float = float("inf")) -> list[dict]:
    got = [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]
    return sorted((x for x in got if after <= x["ts"] < before), key=lambda x: x["ts"])


def _is_load(line: dict) -> bool:
    return bool(line["prompt_tokens"]) and line["prompt_tokens"] > 150


def _wait_load(path: Path, n: int, after: float) -> list[dict]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists() and len(lines := [x for x in _lines(path, after) if _is_load(x)]) >= n:
            return lines
        time.sleep(0.1)
    raise AssertionError(f"{path}: fewer than {n} load lines after {after}")


def _groups(lines: list[dict]) -> set[frozenset[int]]:
    by: dict[str, set[int]] = defaultdict(set)
    for i, ln in enumerate(lines):
        if len(ln["prefix"].split(".")) >= 2:  # prompts of more than a block or two
            by[ln["prefix"].split(".")[0]].add(i)
    return {frozenset(v) for v in by.values()}


def test_a_replayed_access_log_reproduces_arrivals_lengths_and_prefix_groups(tmp_path: Path) -> None:
    log = tmp_path / "access.jsonl"
    sp = start_serve(["--access-log", str(log), "--parallel", "4"], tmp_path)
    try:
        t_start = time.time()
        _bench(sp.url, tmp_path / "rec", "--workload", "shared-prefix", "--requests", str(N),
               "--prefix-groups", "3", "--system-len", "200", "--question-len", "20", "--output-len", "6",
               "--rate", "4", "--arrival", "poisson", "--seed", "7")
        recorded = _wait_load(log, N, t_start)
        recorded_copy = tmp_path / "recorded.jsonl"
        recorded_copy.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in recorded))
        t_replay = time.time()
        _bench(sp.url, tmp_path / "replay", "--workload", f"trace:{recorded_copy}")
        replayed = _wait_load(log, N, t_replay)
        time.sleep(0.5)  # past a flush: anything more the replay sent is in the log by now
        replay_all = _lines(log, t_replay)
    finally:
        assert sp.stop() == 0, sp.log()
    raw = log.read_bytes()
    assert b"Question" not in raw and b'"messages"' not in raw  # no prompt text without log_prompts
    # the recording: bench's probe, then its N requests and nothing else; the replay sends the same
    assert len(_lines(log, t_start, t_replay)) == N + 1, _lines(log, t_start, t_replay)
    assert len(replay_all) == N + 1 and len(replayed) == N, replay_all
    assert all(x["status"] == 200 and x["deployment"] == "smollm2" for x in recorded + replayed)
    # arrivals: the same offsets from the first request
    rec_off = [x["ts"] - recorded[0]["ts"] for x in recorded]
    rep_off = [x["ts"] - replayed[0]["ts"] for x in replayed]
    assert max(abs(a - b) for a, b in zip(rec_off, rep_off, strict=True)) < 0.6, (rec_off, rep_off)
    assert rec_off[-1] > 1.0  # a real spread, not a burst
    # lengths: prompt tokens as the runtime counted them, and the same completion lengths
    lengths = [(a["prompt_tokens"], b["prompt_tokens"], a["completion_tokens"], b["completion_tokens"])
               for a, b in zip(recorded, replayed, strict=True)]
    assert all(abs(p0 - p1) <= 0.15 * p0 + 3 and c0 == c1 for p0, p1, c0, c1 in lengths), lengths
    # prefix sharing: the same requests share a prefix, in as many groups as were sent
    assert _groups(recorded) == _groups(replayed)
    assert sorted(len(g) for g in _groups(recorded)) == [4, 4, 4]
