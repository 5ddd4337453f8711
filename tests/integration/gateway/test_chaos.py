"""Chaos: replicas of the real embedded runtime are killed under steady load and come back.

Zero failed non-streamed requests; every cut stream ends with an explicit error event;
a killed replica leaves the pool at once and returns when the supervisor restarted it.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import openai
import pytest

from helpers import start_serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MSGS = [{"role": "user", "content": "Tell me about the sea."}]


def _ready(sp, endpoint_id: str, pid: int) -> bool:
    """Is the endpoint ready with the process that was killed (not a restarted one)?"""
    return any(e["id"] == endpoint_id and e["ready"] and e["pid"] == pid for e in sp.endpoints())


def test_killing_replicas_under_load_fails_no_plain_request_and_cuts_streams_explicitly(tmp_path: Path) -> None:
    sp = start_serve(["--replicas", "3", "--parallel", "2", "--threads", "1", "--policy", "least_load"], tmp_path)
    stop = threading.Event()
    plain_ok, plain_failed, streams_ok, streams_cut, streams_silent = [], [], [], [], []

    def plain_loop() -> None:
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=60)
        while not stop.is_set():
            try:
                r = client.chat.completions.create(model="smollm2", messages=MSGS, max_tokens=12)
                plain_ok.append(r.choices[0].message.content)
            except openai.APIError as exc:
                plain_failed.append(repr(exc))

    def stream_loop() -> None:
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=60)
        while not stop.is_set():
            finish = None
            try:
                for c in client.chat.completions.create(model="smollm2", messages=MSGS, max_tokens=40, stream=True):
                    if c.choices and c.choices[0].finish_reason:
                        finish = c.choices[0].finish_reason
            except openai.APIError as exc:
                (streams_cut if "broke off" in str(exc) else streams_silent).append(repr(exc))
                continue
            (streams_ok if finish else streams_silent).append(finish)

    threads = [threading.Thread(target=plain_loop) for _ in range(2)] + [threading.Thread(target=stream_loop)]
    try:
        for t in threads:
            t.start()
        rng = random.Random(7)
        killed = 0
        deadline = time.monotonic() + 40
        while killed < 4 and time.monotonic() < deadline:
            time.sleep(2.5)
            ready = [e for e in sp.endpoints() if e["ready"]]
            if len(ready) < 2:
                continue
            victim = rng.choice(ready)
            os.kill(victim["pid"], signal.SIGKILL)
            killed += 1
            gone = time.monotonic() + 3  # the supervisor sees the exit at once; allow for a busy box
            while time.monotonic() < gone and _ready(sp, victim["id"], victim["pid"]):
                time.sleep(0.05)
            assert not _ready(sp, victim["id"], victim["pid"]), "a dead replica must leave the pool"
        # enough plain requests to mean something, however slow the (shared) machine is
        enough = time.monotonic() + 300
        while len(plain_ok) + len(plain_failed) < 10 and time.monotonic() < enough:
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(90)
        assert killed == 4
        # every replica comes back
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(e["ready"] for e in sp.endpoints()) < 3:
            time.sleep(0.3)
        assert sum(e["ready"] for e in sp.endpoints()) == 3
        assert plain_failed == [], plain_failed
        assert len(plain_ok) >= 10
        assert streams_silent == [], streams_silent
        assert streams_ok
    finally:
        stop.set()
        assert sp.stop() == 0
