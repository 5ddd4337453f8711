"""The one fake server replays a runtime's live recording: its bytes, its order and its timing."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from inferplane.bench.fake_recording import load_recording
from inferplane.bench.fake_server import FakeOpenAIServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

LIVE = Path(__file__).parents[2] / "fixtures" / "embedded" / "live"
MSGS = [{"role": "user", "content": "hi"}]


def _post(url: str, body: dict) -> tuple[int, bytes, list[float]]:
    req = urllib.request.Request(url + "/v1/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    t0, arrivals, raw = time.monotonic(), [], b""
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            while line := r.readline():
                raw += line
                if line.startswith(b"data:"):
                    arrivals.append(time.monotonic() - t0)
            return r.status, raw, arrivals
    except urllib.error.HTTPError as e:
        return e.code, e.read(), arrivals


def test_a_stream_replays_the_recorded_bytes_no_faster_than_recorded() -> None:
    rec = load_recording(LIVE)
    assert rec.timed
    with FakeOpenAIServer(recording=str(LIVE), served_model="smollm2").in_thread() as srv:
        status, raw, arrivals = _post(srv.url, {"model": "smollm2", "messages": MSGS, "stream": True,
                                                "stream_options": {"include_usage": True}})
    assert status == 200
    assert raw == b"".join(rec.stream)
    recorded = [sum(rec.chunk_delays_s[: i + 1]) for i in range(len(rec.stream))]
    # sleeps end no earlier than asked: each event arrives at or after its recorded offset
    assert all(got >= want * 0.95 for got, want in zip(arrivals, recorded, strict=True))
    assert arrivals[-1] < recorded[-1] + 20  # and the replay ends (generous: the box may be busy)


def test_without_include_usage_the_usage_chunk_is_left_out_and_time_can_be_scaled() -> None:
    with FakeOpenAIServer(recording=str(LIVE), time_scale=0).in_thread() as srv:
        status, raw, _ = _post(srv.url, {"model": "other-name", "messages": MSGS, "stream": True})
    assert status == 200 and b'"choices":[]' not in raw and raw.endswith(b"data: [DONE]\n\n")
    assert b'"model":"other-name"' in raw  # llama.cpp's server answers under any name


def test_faults_apply_to_replays_too() -> None:
    with FakeOpenAIServer(recording=str(LIVE), time_scale=0, fault="status_500").in_thread() as srv:
        status, body, _ = _post(srv.url, {"model": "smollm2", "messages": MSGS})
    assert status == 500 and json.loads(body)["error"]["type"] == "server_error"
