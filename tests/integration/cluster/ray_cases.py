"""Ray placement end to end, on a real Ray cluster of a head and two worker nodes.

Run only inside a private network namespace (``test_ray.py`` re-executes this module under
``unshare -n``): Ray's processes bind every interface otherwise. The cluster is
``ray.cluster_utils.Cluster`` (every node a set of real raylet processes on this machine) with
capped object stores and fast node health checks, so a removed node is seen dead in about a
second, as on a cluster whose node lost power.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml
from netns import in_netns

from helpers import ServeProcess, alive, start_serve

pytestmark = pytest.mark.skipif(not in_netns(), reason="runs inside test_ray.py's network namespace only")

STORE_BYTES = 80 * 1024 * 1024
FAST_HEALTH = {"health_check_period_ms": 200, "health_check_failure_threshold": 3,
               "health_check_initial_delay_ms": 0, "health_check_timeout_ms": 500}


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False, "object_store_memory": STORE_BYTES,
        "_system_config": FAST_HEALTH})
    try:
        yield c
    finally:
        c.shutdown()


def serve_on_ray(tmp: Path, address: str, *, replicas: int = 2, **dep: object) -> ServeProcess:
    config = {
        "gateway": {"ready_timeout_s": 150, "scrape_interval_s": 1},
        "placement": {"backend": "ray", "address": address},
        "deployments": [{"name": "smollm2", "replicas": replicas, "threads": 1, "max_concurrent_sequences": 2,
                         "context_length_tokens": 1024, **dep}],
    }
    path = tmp / f"ray-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(config))
    return start_serve(["--config", str(path)], tmp, ready_timeout=240)


def _follower_config(tmp: Path, primary: str) -> Path:
    path = tmp / "follower.yaml"
    path.write_text(yaml.safe_dump({"placement": {"follow": primary}, "deployments": [
        {"name": "smollm2", "replicas": 2, "threads": 1, "max_concurrent_sequences": 2,
         "context_length_tokens": 1024}]}))
    return path


def ask(client: openai.OpenAI, text: str) -> tuple[str, str]:
    raw = client.chat.completions.with_raw_response.create(
        model="smollm2", messages=[{"role": "user", "content": text}], max_tokens=4, temperature=0)
    return raw.parse().choices[0].message.content or "", raw.headers["x-inferplane-endpoint"]


def wait_for(cond, timeout_s: float, what: str, interval_s: float = 0.3):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = cond()
        if out:
            return out
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def live_actors(c) -> list[dict]:
    return [a for a in c.global_state.actor_table(None).values() if a["State"] != "DEAD"]


def test_replicas_spread_over_nodes_survive_a_node_death_and_leave_nothing_behind(cluster, tmp_path) -> None:
    w1 = cluster.add_node(num_cpus=2, object_store_memory=STORE_BYTES)
    w2 = cluster.add_node(num_cpus=2, object_store_memory=STORE_BYTES)
    workers = {w1.node_id: w1, w2.node_id: w2}
    sp = serve_on_ray(tmp_path, cluster.address)
    pids: set[int] = set()
    try:
        eps = wait_for(lambda: (lambda es: es if len(es) == 2 and all(e["ready"] for e in es) else None)(
            sp.endpoints()), 150, "both replicas ready")
        assert sorted(e["node"] for e in eps) == sorted(workers), "one replica on each worker node (spread)"
        assert all(e["ready"] and e["managed"] for e in eps)
        pids |= {e["pid"] for e in eps}
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=60)
        answers = [ask(client, f"Say {w}.") for w in ("yes", "no", "maybe", "hello")]
        assert all(text for text, _ in answers)
        assert {ep for _, ep in answers} <= {e["id"] for e in eps}

        victim = eps[0]
        survivor_node = next(n for n in workers if n != victim["node"])
        stop = threading.Event()
        failures: list[str] = []
        done = 0

        def load(k: int) -> None:
            nonlocal done
            n = 0
            while not stop.is_set() and n < 400:  # bounded in count and (by the caller) in time
                n += 1
                try:
                    text, _ = ask(client, f"Count to {k + n}.")
                    assert text
                    done += 1
                except Exception as exc:  # every failure is the finding, not a crash of the load
                    failures.append(f"{type(exc).__name__}: {exc}")

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(load, k) for k in range(3)]
            time.sleep(3)
            killed_at = time.monotonic()
            cluster.remove_node(workers[victim["node"]], allow_graceful=False)
            wait_for(lambda: victim["id"] not in {e["id"] for e in sp.endpoints() if e["ready"]}, 15,
                     "the dead node's replica to leave the pool")
            left_s = time.monotonic() - killed_at
            replaced = wait_for(lambda: [e for e in sp.endpoints() if e["ready"] and e["id"] != eps[1]["id"]
                                         and e["id"] != victim["id"]], 150, "a replacement replica")
            replaced_s = time.monotonic() - killed_at
            time.sleep(2)
            stop.set()
            for f in futures:
                f.result(timeout=120)
        print(f"node death -> out of the pool {left_s:.1f} s, replacement ready {replaced_s:.1f} s; "
              f"{done} requests ok")
        assert not failures, f"{len(failures)} failed non-streamed request(s), first: {failures[0]}"
        assert done > 0
        assert [e["node"] for e in replaced] == [survivor_node], "replaced on the remaining node"
        assert {e["node"] for e in sp.endpoints()} == {survivor_node}

        joined = cluster.add_node(num_cpus=2, object_store_memory=STORE_BYTES)  # a node joins...
        t0 = time.monotonic()
        req = urllib.request.Request(sp.url + "/admin/deployments/smollm2", data=json.dumps({"replicas": 3}).encode(),
                                     method="PATCH", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
        third = wait_for(lambda: [e for e in sp.endpoints() if e["ready"] and e["node"] == joined.node_id], 150,
                         "a replica on the node that joined")
        print(f"scale-up onto the joined node: ready in {time.monotonic() - t0:.1f} s")
        assert len(third) == 1, "...and takes the next replica (the other node's CPUs are taken)"

        follower = start_serve(["--config", str(_follower_config(tmp_path, sp.url))], tmp_path, ready_timeout=60)
        try:  # a second gateway fronting the same Ray-placed replicas, launching none
            fclient = openai.OpenAI(base_url=follower.url + "/v1", api_key="x", max_retries=0, timeout=60)
            _, via = ask(fclient, "Say follow.")
            assert via in {e["id"] for e in sp.endpoints()}
            assert not follower.runtime_pids()
        finally:
            assert follower.stop() == 0, follower.log()[-2000:]
        pids |= {e["pid"] for e in sp.endpoints()}
    finally:
        code = sp.stop()
    assert code == 0, sp.log()[-3000:]
    wait_for(lambda: not live_actors(cluster), 20, "every replica actor to end")
    wait_for(lambda: not [p for p in pids if alive(p)], 20, "every runtime process to end")


def test_node_labels_choose_the_node_and_the_nodes_region_labels_the_replica(cluster, tmp_path) -> None:
    west = cluster.add_node(num_cpus=1, object_store_memory=STORE_BYTES, labels={"region": "west"})
    cluster.add_node(num_cpus=1, object_store_memory=STORE_BYTES, labels={"region": "east"})
    sp = serve_on_ray(tmp_path, cluster.address, replicas=1, placement={"node_labels": {"region": "west"}})
    try:
        (ep,) = wait_for(lambda: [e for e in sp.endpoints() if e["ready"]], 150, "the replica")
        assert ep["node"] == west.node_id and ep["region"] == "west"
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0, timeout=60)
        assert ask(client, "Say west.")[0]
    finally:
        assert sp.stop() == 0, sp.log()[-3000:]
    wait_for(lambda: not live_actors(cluster), 20, "every replica actor to end")
