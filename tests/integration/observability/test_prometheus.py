"""A real Prometheus (Debian package) scrapes the gateway; the shipped dashboard's queries run."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import openai
import pytest
import yaml

from helpers import free_port, http_get, start_serve

pytestmark = pytest.mark.integration

PROMETHEUS = shutil.which("prometheus")
DASHBOARD = Path(__file__).parents[3] / "dashboards" / "inferplane-grafana.json"


def _query(prom: str, expr: str) -> list[dict]:
    status, body = http_get(f"{prom}/api/v1/query?query={urllib.parse.quote(expr)}", timeout=5)
    data = json.loads(body)
    assert status == 200 and data["status"] == "success", (expr, data)
    return data["data"]["result"]


@pytest.mark.skipif(PROMETHEUS is None, reason="Debian package 'prometheus' not installed (scripts/test.sh installs it)")
def test_prometheus_scrapes_the_gateway_and_every_dashboard_query_works(tmp_path: Path, fakes) -> None:
    cfg = tmp_path / "deploy.yaml"
    cfg.write_text(yaml.safe_dump({"gateway": {"scrape_interval_s": 0.5}, "deployments": [
        {"name": "m", "runtime": "openai", "replicas": 0, "policy": "prefix",
         "endpoints": [{"url": fakes("ok")}, {"url": fakes("ok")}]}]}))
    sp = start_serve(["--config", str(cfg)], tmp_path, ready_timeout=30)
    prom_port = free_port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "inferplane", "static_configs": [{"targets": [f"127.0.0.1:{sp.port}"]}]}],
    }))
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("wb"))
    url = f"http://127.0.0.1:{prom_port}"
    try:
        deadline = time.monotonic() + 30  # Prometheus answers 503 until its TSDB is open
        while time.monotonic() < deadline:
            try:
                if http_get(url + "/-/ready", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("Prometheus did not become ready:\n" + (tmp_path / "prometheus.log").read_text())
        client = openai.OpenAI(base_url=sp.url + "/v1", api_key="x", max_retries=0)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:  # keep traffic flowing until Prometheus has two samples of it
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
            list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True))
            try:
                up = _query(url, 'up{job="inferplane"}')
                rate = _query(url, "sum(rate(inferplane_requests_total[1m]))")
            except OSError:
                time.sleep(0.3)
                continue
            if up and up[0]["value"][1] == "1" and rate and float(rate[0]["value"][1]) > 0:
                break
            time.sleep(0.3)
        else:
            pytest.fail("Prometheus never saw the gateway's requests:\n" + (tmp_path / "prometheus.log").read_text())
        assert float(_query(url, 'sum(inferplane_endpoint_ready{deployment="m"})')[0]["value"][1]) == 2
        ok = _query(url, 'inferplane_requests_total{model="m",route="chat",status="200"}')
        assert float(ok[0]["value"][1]) >= 2
        dashboard = json.loads(DASHBOARD.read_text())
        exprs = [t["expr"].replace("$model", ".*") for p in dashboard["panels"] for t in p["targets"]]
        assert len(exprs) >= 10
        for expr in exprs:
            _query(url, expr)  # parses and evaluates
        e2e = _query(url, next(e for e in exprs if "e2e_request_latency" in e))
        assert e2e and float(e2e[0]["value"][1]) > 0
        decisions = _query(url, 'sum(inferplane_routing_decisions_total{deployment="m"})')
        assert float(decisions[0]["value"][1]) >= 2
    finally:
        prom.terminate()
        prom.wait(20)
        assert sp.stop() == 0
