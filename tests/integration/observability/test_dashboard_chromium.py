"""The live dashboard in a real Chromium against a real `inferplane serve` (embedded SmolLM2)
with an admin key and a tenant with limits.

The page loads with no console errors, asks for the admin key (the feed is an admin route),
shows the serving replica, and updates after requests are sent: the request count, the plots
and the tenant's use of its limits change. Set INFERPLANE_DASHBOARD_SCREENSHOT=PATH to keep the screenshot (docs/dashboard.png
is made this way).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml

from helpers import ServeProcess, alive, http_get, start_serve

CHROMIUM = Path("/usr/bin/chromium")
KEY = "dash-admin-key-6f1c"
"""The admin key (gateway.admin_key_env)."""
TENANT_KEY = "dash-tenant-key-93ab"
MODEL = "smollm2"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed at /usr/bin/chromium"),
]
_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
_UNAUTHORIZED = "Failed to load resource: the server responded with a status of 401 (Unauthorized)"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("dash")
    config = {
        "gateway": {"admin_key_env": "TEST_DASH_ADMIN_KEY", "tenants": [{
            "name": "search-team", "key_sha256": hashlib.sha256(TENANT_KEY.encode()).hexdigest(),
            "rpm_limit": 5, "tpm_limit": 100_000, "max_concurrent": 4, "priority": "high"}]},
        "deployments": [{"name": MODEL, "runtime": "embedded", "model": MODEL, "replicas": 1,
                         "max_concurrent_sequences": 2, "policy": "least_load"}],
    }
    path = tmp / "deploy.yaml"
    path.write_text(yaml.safe_dump(config))
    sp = start_serve(["--config", str(path)], tmp, env={"TEST_DASH_ADMIN_KEY": KEY})
    try:
        yield sp
    finally:
        pids = sp.runtime_pids()
        assert sp.stop() == 0, sp.log()
        assert not [p for p in pids if alive(p)], f"orphans left: {pids}"


def _feed(sp: ServeProcess, key: str | None = KEY) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    req = urllib.request.Request(sp.url + "/admin/dashboard.json", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_feed_needs_the_admin_key_and_the_page_holds_no_data(guarded: ServeProcess) -> None:
    status, body = _feed(guarded, None)
    assert status == 401 and body["error"]["code"]
    status, body = _feed(guarded, TENANT_KEY)  # an API key never opens /admin/*
    assert status in (401, 403), body
    status, page = http_get(guarded.url + "/dashboard")
    assert status == 200 and b"<title>inferplane dashboard</title>" in page
    assert MODEL.encode() not in page and b"search-team" not in page  # the shell; data comes from the feed
    status, state = _feed(guarded)
    assert status == 200
    (dep,) = state["deployments"]
    assert dep["name"] == MODEL and dep["replicas"]["ready"] == 1
    assert [t["tenant"] for t in state["tenants"]] == ["search-team"]
    assert state["tenants"][0]["rpm_limit"] == 5


def test_the_dashboard_in_chromium_shows_the_replica_and_follows_requests(guarded: ServeProcess,
                                                                           tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    console: list[str] = []
    urls: list[str] = []
    client = openai.OpenAI(base_url=guarded.url + "/v1", api_key=TENANT_KEY, max_retries=0, timeout=120)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: console.append(str(exc)))
            page.on("request", lambda r: urls.append(r.url))
            page.goto(guarded.url + "/dashboard")
            assert page.title() == "inferplane dashboard"

            # the feed says 401: the page asks for the key once
            page.locator("#login").wait_for(state="visible", timeout=15_000)
            assert page.locator("#main").is_hidden()
            page.fill("#key", KEY)
            page.press("#key", "Enter")
            page.locator("#main").wait_for(state="visible", timeout=15_000)

            card = page.locator(f"article.deployment[data-name='{MODEL}']")
            ready = card.locator("tr.replica[data-state='ready']")
            ready.first.wait_for(timeout=15_000)
            assert ready.count() == 1
            assert card.get_by_test_id("ready-count").inner_text() == "1"
            before = int(page.get_by_test_id("requests-total").inner_text())

            for i in range(3):
                stream = client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": f"Count to {i + 3}."}], max_tokens=12,
                    stream=True, stream_options={"include_usage": True})
                assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)

            page.wait_for_function(
                f"() => Number(document.querySelector('[data-testid=requests-total]').textContent) >= {before + 4}",
                timeout=20_000)
            assert page.locator("#status").get_attribute("class") == "live"
            charts = card.locator("svg.chart")
            assert charts.count() == 3
            # the requests/s plot and the TTFT plot now draw points (lines, or a dot for a lone point)
            for title in ("requests/s", "TTFT", "ITL (mean per request)"):
                chart = card.locator(f"svg.chart[data-title='{title}']")
                assert chart.locator("polyline.s0, circle.s0").count() >= 1, title
            assert "ms" in page.get_by_test_id("ttft").inner_text()
            assert card.locator("tr.replica").first.locator("td").nth(9).inner_text() == "closed"
            # 4 of its 5 requests a minute: the tenant is near its limit (80 %)
            tenant = page.locator("#tenants tr.near", has_text="search-team")
            tenant.wait_for(timeout=10_000)
            assert "4 / 5" in tenant.inner_text()

            # the key stays in this tab: a reload does not ask again, and no URL ever carried it
            n_console = len(console)
            page.reload()
            page.locator("#main").wait_for(state="visible", timeout=15_000)
            assert page.locator("#login").is_hidden()
            page.wait_for_timeout(3_500)  # two more polls
            assert len(console) == n_console

            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    # the only console error: Chromium's own line for the first, keyless 401 from the feed
    assert console == [_UNAUTHORIZED]
    assert all(u.startswith(guarded.url + "/") or u.startswith("data:") for u in urls), urls
    assert not [u for u in urls if KEY in u]
    assert shot.stat().st_size > 20_000
    keep = os.environ.get("INFERPLANE_DASHBOARD_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)
