"""Two regions, a gateway in each: a region that loses every replica fails over, and comes back.

Each gateway prefers its own region's replicas and has the other region as its next tier
(``preferred_region``). Every replica of region ``east`` is killed under load: east's
gateway serves its traffic from ``west`` with no failed non-streamed request, and its
``x-inferplane-endpoint`` header names the west replica that answered; when east's replicas
return (same addresses), its traffic returns to them.

The listeners run plain HTTP here, and HTTPS with ``gateway.tls`` (a certificate made for the
test) wherever the config has that field: the ``tls`` case switches itself on then.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from helpers import ServeProcess, free_port, http_get, start_serve
from inferplane.config.models import GatewayConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAKE = Path(__file__).parents[2] / "fake_upstream.py"
HAS_TLS = "tls" in GatewayConfig.model_fields


class Replica:
    """A fake OpenAI runtime on a fixed port, which can be killed and started again there."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(FAKE), str(self.port), "ok"])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if http_get(self.url + "/health", timeout=1)[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("fake replica did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def replicas() -> Iterator[dict[str, list[Replica]]]:
    regions = {"east": [Replica(), Replica()], "west": [Replica(), Replica()]}
    for rs in regions.values():
        for r in rs:
            r.start()
    yield regions
    for rs in regions.values():
        for r in rs:
            r.kill()


def _cert(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def _gateway(tmp: Path, region: str, regions: dict[str, list[Replica]], tls: tuple[Path, Path] | None
             ) -> ServeProcess:
    gateway: dict[str, object] = {"preferred_region": region, "scrape_interval_s": 0.3}
    if tls is not None:
        gateway["tls"] = {"cert_file": str(tls[0]), "key_file": str(tls[1])}
    endpoints = [{"url": r.url, "region": name} for name, rs in regions.items() for r in rs]
    path = tmp / f"gateway-{region}.yaml"
    path.write_text(yaml.safe_dump({"gateway": gateway, "deployments": [
        {"name": "m", "runtime": "openai", "replicas": 0, "endpoints": endpoints,
         "retry": {"max_attempts": 5, "backoff_s": 0.02}, "breaker": {"failure_threshold": 2, "open_s": 1.0}}]}))
    return start_serve(["--config", str(path)], tmp, ready_timeout=30, wait_ready=tls is None)


@pytest.mark.parametrize("listener", ["plain", pytest.param("tls", marks=pytest.mark.skipif(
    not HAS_TLS or shutil.which("openssl") is None, reason="needs gateway.tls (listener TLS) and openssl"))])
def test_a_region_that_loses_every_replica_fails_over_and_its_traffic_returns(
        listener: str, replicas: dict[str, list[Replica]], tmp_path: Path) -> None:
    tls = _cert(tmp_path) if listener == "tls" else None
    scheme = "https" if tls else "http"
    ids: dict[str, str] = {}
    east = _gateway(tmp_path, "east", replicas, tls)
    west = _gateway(tmp_path, "west", replicas, tls)
    try:
        base = {"east": f"{scheme}://127.0.0.1:{east.port}", "west": f"{scheme}://127.0.0.1:{west.port}"}
        ctx = ssl.create_default_context(cafile=str(tls[0])) if tls else None

        def call(gw: str, path: str, body: dict | None = None) -> tuple[int, dict[str, str], bytes]:
            req = urllib.request.Request(base[gw] + path, data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=20, context=ctx) as r:
                    return r.status, dict(r.headers), r.read()
            except urllib.error.HTTPError as e:
                return e.code, dict(e.headers), e.read()

        eps: list[dict] = []
        for gw in ("west", "east"):  # both listening (over TLS, start_serve cannot probe) and all 4 ready
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    eps = json.loads(call(gw, "/admin/endpoints")[2])["endpoints"]
                    if len(eps) == 4 and all(e["ready"] for e in eps):
                        break
                except OSError:
                    pass
                time.sleep(0.2)
        ids = {e["url"]: e["id"] for e in eps}
        region_of = {ids[r.url]: name for name, rs in replicas.items() for r in rs}

        def ask(gw: str) -> tuple[int, str]:
            status, headers, _ = call(gw, "/v1/chat/completions", {
                "model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
            return status, headers.get("x-inferplane-endpoint", "")

        for gw in ("east", "west"):  # each gateway keeps to its own region while it is healthy
            assert {region_of[ask(gw)[1]] for _ in range(8)} == {gw}

        failures: list[str] = []
        answered_by: dict[str, list[str]] = {"east": [], "west": []}
        stop = threading.Event()

        def load(gw: str) -> None:
            for _ in range(2000):  # bounded; stopped by the event long before
                if stop.is_set():
                    return
                try:
                    status, ep = ask(gw)
                except OSError as exc:
                    failures.append(f"{gw}: {type(exc).__name__}: {exc}")
                    continue
                if status != 200:
                    failures.append(f"{gw}: status {status}")
                else:
                    answered_by[gw].append(region_of.get(ep, ep))
                time.sleep(0.01)

        threads = [threading.Thread(target=load, args=(g,)) for g in ("east", "west") for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        mark = len(answered_by["east"])
        for r in replicas["east"]:
            r.kill()
        time.sleep(3.0)
        during = answered_by["east"][mark:]
        for r in replicas["east"]:
            r.start()
        back = time.monotonic()
        while time.monotonic() - back < 20 and answered_by["east"][-5:] != ["east"] * 5:
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(30)
        assert not failures, f"{len(failures)} failed request(s), first: {failures[:3]}"
        assert during and during[-10:] == ["west"] * 10, "east's traffic went to west while east was down"
        assert set(answered_by["west"]) == {"west"}, "west kept to its own region throughout"
        assert answered_by["east"][-5:] == ["east"] * 5, "east's traffic returned once its replicas did"
    finally:
        for sp in (east, west):
            assert sp.stop() == 0, sp.log()[-2000:]
