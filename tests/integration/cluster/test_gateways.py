"""Gateways that scale out: ``serve --workers`` on one port, and a second ``serve`` following the first.

Both share the first gateway's replicas and nothing else: no database, no shared index. A
shared-prefix workload sent through two gateways must find its prefixes cached about as
often as through one (the prefix policy sends a prefix neither has seen to the same home).
"""

from __future__ import annotations

import collections
import json
import random
import signal
import time
from pathlib import Path

import openai
import pytest
import yaml

from helpers import ServeProcess, alive, children_of, http_get, start_serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _config(tmp: Path, name: str, *, replicas: int, follow: str | None = None) -> Path:
    doc: dict[str, object] = {
        "gateway": {"scrape_interval_s": 1},
        "deployments": [{"name": "smollm2", "replicas": replicas, "threads": 1, "max_concurrent_sequences": 2,
                         "context_length_tokens": 2048}],
    }
    if follow:
        doc["placement"] = {"follow": follow}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_workers_share_one_port_and_the_replicas_of_one_control_plane(tmp_path: Path) -> None:
    sp = start_serve(["--config", str(_config(tmp_path, "w", replicas=1)), "--workers", "2"], tmp_path)
    try:
        seen_pids: set[object] = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(seen_pids) < 2:  # each process answers for itself
            eps = json.loads(http_get(sp.url + "/admin/endpoints")[1])["endpoints"]
            if len(eps) == 1 and eps[0]["ready"]:
                seen_pids.add(eps[0]["pid"])  # the primary knows its runtime's pid; a follower does not
            time.sleep(0.1)
        assert len(seen_pids) == 2, "both gateway processes answer on the one port, with the same replica"
        (ep,) = json.loads(http_get(sp.url + "/admin/endpoints")[1])["endpoints"]
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=60)
        for i in range(6):  # fresh connections: the kernel spreads them over both processes
            with openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=60) as c:
                raw = c.chat.completions.with_raw_response.create(
                    model="smollm2", messages=[{"role": "user", "content": f"Say {i}."}], max_tokens=2)
            assert raw.headers["x-inferplane-endpoint"] == ep["id"]
            assert raw.parse().choices[0].message.content is not None
        client.close()
        pids = children_of(sp.proc.pid)
        assert len(pids) >= 2
    finally:
        code = sp.stop(signal.SIGTERM)
    assert code == 0, sp.log()[-3000:]
    assert not [p for p in pids if alive(p)], "no follower gateway or runtime left"


def _shared_prefix_run(gateways: list[ServeProcess], groups: int, questions: int, seed: int
                       ) -> tuple[float, dict[str, float], float]:
    """Hit rate (cached / prompt tokens, as the runtimes report them) overall and per replica, and
    the mean latency of these one-token answers (about their TTFT), seconds."""
    rng = random.Random(seed)
    words = ["river", "stone", "copper", "maple", "orbit", "lantern", "velvet", "harbor", "quartz", "meadow", "signal", "ember"]
    clients = [openai.OpenAI(base_url=g.url + "/v1", api_key="x", max_retries=0, timeout=120) for g in gateways]
    prompts = [" ".join(rng.choice(words) for _ in range(260)) for _ in range(groups)]
    order = [(g, q) for q in range(questions) for g in range(groups)]
    cached: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    latencies = []
    for g, q in order:  # each question of a group through the other gateway than the last
        t0 = time.perf_counter()
        raw = clients[(g + q) % len(clients)].chat.completions.with_raw_response.create(
            model="smollm2", max_tokens=1, temperature=0,
            messages=[{"role": "system", "content": prompts[g]}, {"role": "user", "content": f"Question {q}?"}])
        usage = raw.parse().usage
        latencies.append(time.perf_counter() - t0)
        ep = raw.headers["x-inferplane-endpoint"]
        total[ep] += usage.prompt_tokens
        cached[ep] += (usage.prompt_tokens_details.cached_tokens or 0) if usage.prompt_tokens_details else 0
    for c in clients:
        c.close()
    return (sum(cached.values()) / sum(total.values()), {ep: cached[ep] / total[ep] for ep in total},
            sum(latencies) / len(latencies))


def test_two_gateways_over_the_same_replicas_keep_their_cache_hit_rate(tmp_path: Path) -> None:
    primary = start_serve(["--config", str(_config(tmp_path, "primary", replicas=2))], tmp_path)
    follower = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(e["ready"] for e in primary.endpoints()):
            time.sleep(0.3)
        follower = start_serve(["--config", str(_config(tmp_path, "follower", replicas=2, follow=primary.url))],
                               tmp_path, ready_timeout=60)
        assert {e["id"] for e in follower.endpoints()} == {e["id"] for e in primary.endpoints()}
        assert not follower.runtime_pids(), "a follower launches nothing"
        one, one_per, one_s = _shared_prefix_run([primary], groups=4, questions=3, seed=1)
        two, two_per, two_s = _shared_prefix_run([primary, follower], groups=4, questions=3, seed=2)
        print(f"prefix-cache hit rate: one gateway {one:.3f} {one_per} (mean TTFT {one_s:.2f} s); "
              f"two gateways {two:.3f} {two_per} (mean TTFT {two_s:.2f} s)")
        assert one > 0.3, "the workload shares prefixes: one gateway finds them cached"
        assert two >= 0.9 * one, f"two gateways lose more than 10 % of one gateway's hit rate ({two:.3f} vs {one:.3f})"
    finally:
        if follower is not None:
            assert follower.stop() == 0, follower.log()[-2000:]
        assert primary.stop() == 0, primary.log()[-2000:]
