"""The prefix index's memory: bounded per endpoint by the runtime's KV capacity, and exported."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferplane.config.models import parse_config
from inferplane.observability.metrics import GatewayMetrics, RoutingSample
from inferplane.observability.stats import EndpointStats
from inferplane.routing.prefix import PrefixIndex, prefix_block_hashes
from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.routing.router import RouteInfo, Router
from inferplane.runtimes.base import OPENAI_DIALECT
from inferplane.runtimes.vllm import parse_vllm_metrics

FIXTURES = Path(__file__).parents[2] / "fixtures"


def test_vllm_reports_its_kv_capacity() -> None:
    # recorded from vLLM 0.32.0 (CPU): num_gpu_blocks="182" x block_size="128" = kv_cache_size_tokens="23296"
    stats = parse_vllm_metrics((FIXTURES / "vllm" / "live" / "metrics.txt").read_text())
    assert stats.kv_cache_tokens == 23296


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ('vllm:cache_config_info{block_size="16",num_gpu_blocks="100"} 1.0\n', 1600),
        ('vllm:cache_config_info{kv_cache_size_tokens="512",num_gpu_blocks="100",block_size="16"} 1.0\n', 512),
        ("vllm:num_requests_running 1.0\n", None),
    ],
)
def test_vllm_kv_capacity_from_either_label(text: str, tokens: float | None) -> None:
    assert parse_vllm_metrics(text).kv_cache_tokens == tokens


def test_set_capacity_evicts_least_recent_and_bounds_what_is_kept() -> None:
    index = PrefixIndex(max_blocks=100)
    old, new = prefix_block_hashes("a" * 40, 4), prefix_block_hashes("b" * 40, 4)
    index.insert("e1", old)
    index.insert("e1", new)
    assert index.size("e1") == 20
    index.set_capacity("e1", 12)
    assert index.size("e1") <= 12 and index.capacity("e1") == 12
    assert index.match("e1", new) == 10 and index.match("e1", old) == 2  # old's tail went first
    index.insert("e1", prefix_block_hashes("c" * 400, 4))  # longer than the whole bound
    assert index.size("e1") <= 12


def test_router_mirrors_the_runtime_kv_capacity_and_metrics_show_the_index() -> None:
    cfg = parse_config({"deployments": [{"name": "m", "replicas": 0, "endpoints": [{"url": "http://x"}],
                                         "policy": "prefix"}]})
    reg = EndpointRegistry()
    router = Router(reg, cfg.deployments)
    for eid in ("a", "b"):
        ep = Endpoint(id=eid, deployment="m", runtime="vllm", url=f"http://127.0.0.1/{eid}",
                      dialect=OPENAI_DIALECT, capacity=4, stats=EndpointStats(kv_cache_tokens=1024))
        reg.add(ep)
        reg.set_ready(ep, True)
    body = b'{"model":"m","messages":[{"role":"user","content":"%s"}]}' % (b"x" * 100_000)
    choice = router.pick(RouteInfo("m", None, body), set())
    assert choice is not None
    # 1,024 tokens x 4 bytes / 256-byte blocks = 16 blocks: the index keeps no more than the runtime can
    assert router.prefix_index_blocks() == {("m", choice.endpoint.id): (16, 16)}
    metrics = GatewayMetrics(lambda: [], lambda: RoutingSample({}, {}, {}, router.prefix_index_blocks()))
    text = metrics.render().decode()
    assert f'inferplane_prefix_index_blocks{{deployment="m",endpoint="{choice.endpoint.id}"}} 16.0' in text
    assert "inferplane_prefix_index_capacity_blocks" in text
