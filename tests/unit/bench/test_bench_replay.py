"""Replaying an access log: arrival times, lengths and the prefix-sharing groups come back."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from inferplane.bench import replay
from inferplane.bench import workloads as wl
from inferplane.bench.client import ClientConfig, request_body
from inferplane.observability.access_log import AccessLog, prompt_fingerprint
from inferplane.observability.observer import Outcome, RequestRecord, Usage
from inferplane.protocol.routes import Route, SurfaceName


def _record_log(tmp_path: Path, work: wl.Workload, gaps_s: list[float]) -> tuple[Path, list[dict]]:
    """An access log of ``work`` as the gateway writes it (token counts ~ one per word)."""
    cfg = ClientConfig(base_url="http://x", model="m")
    log = AccessLog(writer=None)  # type: ignore[arg-type]
    lines, t = [], 1_700_000_000.0
    for i, (req, gap) in enumerate(zip(work.requests, gaps_s, strict=True)):
        t += gap
        body = request_body(cfg, req)
        rec = RequestRecord(request_id=f"r{i}", surface=SurfaceName.OPENAI, route=Route.CHAT, t_start=0.0,
                            started_unix=t, path="/v1/chat/completions", body=body, model="m", stream=True,
                            max_tokens=req.max_tokens)
        prompt_tokens = sum(len(c.split()) for _, c in req.messages) + 9
        lines.append(log.line(rec, Outcome(status=200, t_end=1.0, usage=Usage(prompt_tokens, 5 + i % 7, 0))))
    path = tmp_path / "access.jsonl"
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    return path, lines


def _groups(keys: list[str]) -> set[frozenset[int]]:
    by: dict[str, set[int]] = defaultdict(set)
    for i, k in enumerate(keys):
        by[k].add(i)
    return {frozenset(v) for v in by.values()}


def test_replay_rebuilds_arrivals_lengths_and_prefix_groups(tmp_path: Path) -> None:
    work = wl.shared_prefix(12, groups=3, system_len=300, question_len=40, output_len=16, seed=3, nonce="rec")
    gaps = [0.0, 0.5, 0.1, 1.2, 0.0, 0.3, 0.7, 0.2, 0.2, 2.0, 0.05, 0.4]
    path, lines = _record_log(tmp_path, work, gaps)

    out = replay.trace_file(path, nonce="replay-1")

    assert out.params["format"] == "access-log" and out.params["prefix_groups"] == 3
    offsets = [r.at_s for r in out.requests]
    assert offsets == pytest.approx([sum(gaps[1 : i + 1]) for i in range(12)], abs=1e-5)
    assert [r.max_tokens for r in out.requests] == [ln["completion_tokens"] for ln in lines]
    for r, ln in zip(out.requests, lines, strict=True):
        words = sum(len(c.split()) for _, c in r.messages)
        assert abs(words - ln["prompt_tokens"]) <= 0.1 * ln["prompt_tokens"], (words, ln["prompt_tokens"])
    # the groups: the recorded fingerprints' first hash partitions the requests; so do the replay's
    recorded = _groups([ln["prefix"].split(".")[0] for ln in lines])
    cfg = ClientConfig(base_url="http://x", model="m")
    replayed = _groups([prompt_fingerprint(request_body(cfg, r))[1].split(".")[0] for r in out.requests])
    assert recorded == replayed and len(recorded) == 3
    # within a group the shared part is about as long as the recorded one (checkpoint precision)
    a, b = out.requests[0].messages[0][1], out.requests[3].messages[0][1]
    shared_words = len(a[: next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)].split())
    assert 0.6 * 300 <= shared_words <= 1.1 * 309


def test_no_prompt_text_needed_and_none_reused_across_runs(tmp_path: Path) -> None:
    work = wl.shared_prefix(4, groups=2, system_len=200, question_len=10, output_len=8, seed=1, nonce="x")
    path, _ = _record_log(tmp_path, work, [0.0, 0.1, 0.1, 0.1])
    assert b"Question" not in path.read_bytes()  # the log has no prompt text
    one, two = replay.trace_file(path, nonce="a"), replay.trace_file(path, nonce="b")
    assert one.requests[0].messages[0][1][:60] != two.requests[0].messages[0][1][:60]


def test_logged_prompts_are_replayed_verbatim(tmp_path: Path) -> None:
    line = {"ts": 5.0, "request_id": "r", "prefix": "", "deployment": "m", "prompt_tokens": 7,
            "completion_tokens": 3, "messages": [{"role": "user", "content": "hello there"}]}
    path = tmp_path / "a.jsonl"
    path.write_bytes(orjson.dumps(line) + b"\n")
    (r,) = replay.trace_file(path).requests
    assert r.messages == (("user", "hello there"),) and r.max_tokens == 3 and r.at_s == 0.0


def test_lines_the_gateway_rejected_before_routing_are_skipped(tmp_path: Path) -> None:
    ok = {"ts": 1.0, "request_id": "a", "prefix": "", "deployment": "m", "prompt_bytes": 400,
          "prompt_tokens": None, "completion_tokens": None, "max_tokens": 12, "status": 429}
    bad = {"ts": 2.0, "request_id": "b", "prefix": "", "deployment": None, "prompt_bytes": 9, "status": 400}
    path = tmp_path / "a.jsonl"
    path.write_bytes(orjson.dumps(ok) + b"\n" + orjson.dumps(bad) + b"\n")
    out = replay.trace_file(path)
    assert len(out.requests) == 1 and out.params["skipped_no_deployment"] == 1
    assert out.requests[0].max_tokens == 12 and out.requests[0].input_tokens_estimate == 100


def test_a_plain_trace_still_reads_as_a_trace(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"timestamp": 3, "prompt": "hi", "max_tokens": 4}\n')
    out = replay.trace_file(path)
    assert out.params.get("format") is None and out.requests[0].messages == (("user", "hi"),)


@pytest.mark.parametrize("content", [b"", b"not json\n", b'{"ts": "x", "request_id": 1, "prefix": ""}\n'])
def test_a_bad_access_log_is_a_workload_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(content)
    with pytest.raises(wl.WorkloadError):
        replay.trace_file(path)


def test_the_targets_chat_template_is_taken_off_the_recorded_lengths(tmp_path: Path) -> None:
    line = {"ts": 1.0, "request_id": "a", "prefix": "", "deployment": "m", "prompt_bytes": 120,
            "prompt_tokens": 40, "completion_tokens": 4}
    path = tmp_path / "a.jsonl"
    path.write_bytes(orjson.dumps(line) + b"\n")
    (plain,) = replay.trace_file(path).requests
    (fitted,) = replay.trace_file(path, template_tokens=30).requests
    assert len(plain.messages[0][1].split()) == 40
    assert len(fitted.messages[0][1].split()) == 10  # + 30 template tokens = the recorded 40
    assert fitted.input_tokens_estimate == 40
