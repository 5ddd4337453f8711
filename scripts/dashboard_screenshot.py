"""Make docs/dashboard.png: a real `inferplane serve` (embedded SmolLM2, 2 replicas, an admin
key, two tenants with limits) under a minute or so of mixed traffic, photographed in headless
Chromium.

    python scripts/dashboard_screenshot.py [--out docs/dashboard.png] [--seconds 60]

Needs /usr/bin/chromium and playwright (the test extras). Talks only to 127.0.0.1; stops
the server it started (by PID) before it exits.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import openai
import yaml
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import start_serve

KEY = "screenshot-admin-key"
TENANTS = {"search-team": ("search-key", {"rpm_limit": 40, "tpm_limit": 20_000, "max_concurrent": 4,
                                          "priority": "high"}),
           "batch-jobs": ("batch-key", {"rpm_limit": 600, "priority": "low"})}
PROMPTS = ["Name three colours of the rainbow.", "Count to five.", "Say hello in French.",
           "What is the capital of Italy?", "Write a haiku about rain."]


def _traffic(url: str, until: float, worker: int) -> None:
    key = TENANTS["search-team" if worker else "batch-jobs"][0]
    client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)
    i = worker
    while time.monotonic() < until:
        msgs = [{"role": "system", "content": "You are a terse assistant."},
                {"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]
        try:
            if i % 7 == 3:
                client.chat.completions.create(model="nope", messages=msgs, max_tokens=4)  # a 404
            stream = client.chat.completions.create(model="smollm2", messages=msgs, max_tokens=24, stream=True,
                                                    stream_options={"include_usage": True})
            for _ in stream:
                pass
        except openai.APIError:
            pass
        i += 3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    with TemporaryDirectory() as tmp:
        config = {
            "gateway": {"admin_key_env": "SCREENSHOT_ADMIN_KEY", "tenants": [
                {"name": name, "key_sha256": hashlib.sha256(key.encode()).hexdigest(), **limits}
                for name, (key, limits) in TENANTS.items()]},
            "deployments": [{"name": "smollm2", "runtime": "embedded", "model": "smollm2", "replicas": 2,
                             "max_concurrent_sequences": 2, "policy": "prefix"}],
        }
        path = Path(tmp) / "deploy.yaml"
        path.write_text(yaml.safe_dump(config))
        sp = start_serve(["--config", str(path)], Path(tmp), env={"SCREENSHOT_ADMIN_KEY": KEY})
        try:
            until = time.monotonic() + args.seconds
            workers = [threading.Thread(target=_traffic, args=(sp.url, until, w)) for w in range(3)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.add_init_script(f"sessionStorage.setItem('inferplane.adminKey', {KEY!r})")
                page.goto(sp.url + "/dashboard")
                page.locator("#main").wait_for(state="visible", timeout=15_000)
                page.wait_for_timeout(2_000)
                page.screenshot(path=str(args.out), full_page=True)
                browser.close()
        finally:
            sp.stop()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
