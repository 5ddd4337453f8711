"""The access log observer: line contents, prompt privacy, fingerprints, buffered writing, rotation."""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import pytest

from inferplane.bench.replay import checkpoint_blocks
from inferplane.observability.access_log import AccessLog, LineWriter, prompt_fingerprint
from inferplane.observability.observer import Observers, Outcome, RequestRecord, Usage
from inferplane.protocol.routes import Route, SurfaceName
from inferplane.routing.prefix import CHECKPOINT_BLOCKS

SECRET = "the launch code is swordfish"


def _body(system: str, question: str) -> bytes:
    return orjson.dumps({"model": "m", "messages": [{"role": "system", "content": system},
                                                     {"role": "user", "content": question}],
                         "max_tokens": 16, "stream": True})


def _rec(body: bytes, rid: str = "r1", t0: float = 100.0) -> RequestRecord:
    return RequestRecord(request_id=rid, surface=SurfaceName.OPENAI, route=Route.CHAT, t_start=t0,
                         started_unix=1_796_126_400.25, path="/v1/chat/completions", body=body, model="m",
                         stream=True, tenant="search-team", max_tokens=16)


def _outcome(t_end: float = 101.5) -> Outcome:
    return Outcome(status=200, t_end=t_end, usage=Usage(412, 16, 256), ttft_s=0.08, endpoint_id="m-0",
                   runtime="embedded", retries=1, queued_s=0.01)


def test_a_line_has_what_operators_need_and_never_the_prompt(tmp_path: Path) -> None:
    path = tmp_path / "access.jsonl"
    w = LineWriter(str(path))
    obs = Observers((AccessLog(w),))
    rec = _rec(_body("You are helpful. " * 40, SECRET))
    obs.started(rec)
    obs.finished(rec, _outcome())
    w.close()
    raw = path.read_bytes()
    assert SECRET.encode() not in raw and b"You are helpful" not in raw
    (line,) = [orjson.loads(x) for x in raw.splitlines()]
    assert line["time"] == "2026-12-01T12:00:00.250Z" and line["ts"] == 1_796_126_400.25
    assert {k: line[k] for k in ("request_id", "tenant", "deployment", "endpoint", "runtime", "status",
                                 "prompt_tokens", "completion_tokens", "cached_tokens", "retries")} == {
        "request_id": "r1", "tenant": "search-team", "deployment": "m", "endpoint": "m-0",
        "runtime": "embedded", "status": 200, "prompt_tokens": 412, "completion_tokens": 16,
        "cached_tokens": 256, "retries": 1}
    assert line["ttft_s"] == 0.08 and line["duration_s"] == 1.5 and line["route"] == "chat"
    assert line["prompt_bytes"] > 700 and len(line["prefix"].split(".")) >= 3


def test_log_prompts_puts_the_messages_in() -> None:
    log = AccessLog(writer=None, log_prompts=True)  # type: ignore[arg-type]
    line = log.line(_rec(_body("sys", SECRET)), _outcome())
    assert line["messages"][1] == {"role": "user", "content": SECRET}


def test_a_rejection_before_the_model_was_known_is_logged_too() -> None:
    log = AccessLog(writer=None)  # type: ignore[arg-type]
    rec = RequestRecord(request_id="r2", surface=SurfaceName.OPENAI, route=Route.CHAT, t_start=5.0,
                        started_unix=1.0, path="/v1/chat/completions", body=b"{not json")
    line = log.line(rec, Outcome(status=400, t_end=5.001, error_code="invalid_json"))
    assert line["status"] == 400 and line["deployment"] is None and line["error_code"] == "invalid_json"
    assert line["prompt_tokens"] is None and line["prefix"] == ""


def test_shared_prefixes_share_the_fingerprints_leading_part() -> None:
    system = "You answer questions about the tax code of a small country. " * 60  # ~3.6 KB
    a = prompt_fingerprint(_body(system, "What is the VAT rate on bread? " * 30))[1].split(".")
    b = prompt_fingerprint(_body(system, "Who pays the land tax in spring? " * 30))[1].split(".")
    other = prompt_fingerprint(_body("Translate into French. " * 160, "good morning" * 9))[1].split(".")
    assert len(a) >= 16 and len(b) >= 16
    common = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    shared_bytes = len(b'{"model":"m","messages":[{"role":"system","content":"') + len(system) - len(b'{"model":"m",')
    # the fingerprints agree on exactly the checkpoints the shared bytes cover
    assert common == sum(1 for c in CHECKPOINT_BLOCKS[:40] if c * 256 <= shared_bytes)
    assert common >= 12 and a[0] != other[0]


def test_bench_restates_the_checkpoint_table_exactly() -> None:
    assert [checkpoint_blocks(k) for k in range(1, 60)] == list(CHECKPOINT_BLOCKS[:59])
    assert checkpoint_blocks(0) == 0


def test_the_writer_keeps_the_event_loop_out_of_file_io(tmp_path: Path) -> None:
    """write() only queues; the thread writes within its interval; close() writes the rest."""
    path = tmp_path / "a.jsonl"
    w = LineWriter(str(path), flush_interval_s=60.0, flush_lines=10_000)
    for i in range(100):
        w.write(b'{"i":%d}\n' % i)
    assert path.read_bytes() == b""  # nothing written on the caller's thread
    w.close()
    assert [orjson.loads(x)["i"] for x in path.read_bytes().splitlines()] == list(range(100))


def test_a_rotated_log_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    w = LineWriter(str(path), flush_interval_s=0.02)
    w.write(b'{"n":1}\n')
    deadline = time.monotonic() + 30
    while path.stat().st_size == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.rename(path, tmp_path / "a.jsonl.1")  # what logrotate does
    w.write(b'{"n":2}\n')
    w.close()
    assert (tmp_path / "a.jsonl.1").read_bytes() == b'{"n":1}\n'
    assert path.read_bytes() == b'{"n":2}\n'


def test_a_log_that_cannot_keep_up_drops_lines_instead_of_growing() -> None:
    w = LineWriter(os.devnull, flush_interval_s=60.0, flush_lines=10**9, max_pending_lines=5)
    for _ in range(8):
        w.write(b"x\n")
    assert w.dropped == 3
    w.close()


def test_an_unwritable_path_fails_at_start(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError):
        LineWriter(str(tmp_path / "file" / "access.jsonl"))
