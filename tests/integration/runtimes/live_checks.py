"""Checks shared by the live runtime tests (vLLM, MAX): what a user of any runtime behind the
gateway must see, whatever the runtime."""

from __future__ import annotations

import time

import openai
from prometheus_client.parser import text_string_to_metric_families

from helpers import ServeProcess, alive, http_get

__all__ = ["check_max_tokens", "check_normalized_stats", "check_plain_and_stream_agree", "check_stop_leaves_nothing"]


def gateway_metrics(sp: ServeProcess) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    status, body = http_get(sp.url + "/metrics")
    assert status == 200
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def series(metrics: dict, name: str, deployment: str, runtime: str) -> list[float]:
    return [v for labels, v in metrics.get(name, {}).items()
            if dict(labels).get("deployment") == deployment and dict(labels).get("runtime") == runtime]


def check_plain_and_stream_agree(client: openai.OpenAI, name: str, messages: list[dict], **extra: object) -> None:
    """Temperature 0: the same text plain and streamed; usage consistent; OpenAI's chunk order."""
    kw = dict(model=name, messages=messages, max_tokens=32, temperature=0, **extra)
    plain = client.chat.completions.create(**kw)
    assert plain.model == name
    assert plain.choices[0].message.role == "assistant"
    assert plain.choices[0].message.content.strip()
    u = plain.usage
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert 1 <= u.completion_tokens <= 32
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    su = chunks[-1].usage
    assert (su.prompt_tokens, su.completion_tokens) == (u.prompt_tokens, u.completion_tokens)
    assert su.total_tokens == su.prompt_tokens + su.completion_tokens
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [plain.choices[0].finish_reason]


def check_max_tokens(client: openai.OpenAI, name: str, messages: list[dict]) -> None:
    resp = client.chat.completions.create(model=name, messages=messages, max_tokens=3, temperature=0)
    assert resp.usage.completion_tokens == 3
    assert resp.choices[0].finish_reason == "length"


def check_normalized_stats(sp: ServeProcess, client: openai.OpenAI, name: str, runtime: str) -> None:
    """Two requests sharing a ~700-token prefix; the gateway's normalized endpoint stats show them.

    The stats are read from a scrape taken after both requests finished (a runtime's gauges
    may lag its responses: MAX exports them from a separate metrics process).
    """
    prefix = " ".join(f"Fact {i}: {i} is {'even' if i % 2 == 0 else 'odd'}." for i in range(60))
    for q in ("Is 7 odd?", "Is 8 odd?"):
        client.chat.completions.create(model=name, max_tokens=4, temperature=0,
                                       messages=[{"role": "user", "content": prefix + "\n" + q}])
    deadline = time.monotonic() + 30
    while True:
        m = gateway_metrics(sp)
        generated = series(m, "inferplane_endpoint_generation_tokens", name, runtime)
        hits = series(m, "inferplane_endpoint_prefix_cache_hits", name, runtime)
        idle = series(m, "inferplane_endpoint_running", name, runtime) == [0.0]
        if (generated and generated[0] > 0 and hits and hits[0] > 0 and idle) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert series(m, "inferplane_endpoint_ready", name, runtime) == [1.0]
    assert series(m, "inferplane_endpoint_running", name, runtime) == [0.0]
    assert series(m, "inferplane_endpoint_waiting", name, runtime) == [0.0]
    kv = series(m, "inferplane_endpoint_kv_cache_usage_ratio", name, runtime)
    assert len(kv) == 1 and 0.0 <= kv[0] <= 1.0
    assert generated and generated[0] > 0
    assert series(m, "inferplane_endpoint_prompt_tokens", name, runtime)[0] > 0
    # the repeated prefix fills whole KV blocks (128 tokens), which the second request reuses
    queries = series(m, "inferplane_endpoint_prefix_cache_queries", name, runtime)
    assert hits and queries and 0 < hits[0] <= queries[0]


def check_stop_leaves_nothing(sp: ServeProcess, runtime: str, wait_s: float = 15) -> None:
    pids = sp.runtime_pids()
    assert pids, f"the {runtime} replica should run as a child of inferplane serve"
    code = sp.stop(timeout=60)
    assert code == 0, sp.log()[-4000:]
    deadline = time.monotonic() + wait_s
    while [p for p in pids if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in pids if alive(p)], f"processes left after stop: {pids}"
