"""Make docs/dashboard.png: a real `inferplane serve` (embedded SmolLM2, 2 replicas) under a
minute or so of mixed traffic, photographed in headless Chromium.

    python scripts/dashboard_screenshot.py [--out docs/dashboard.png] [--seconds 60]

Needs /usr/bin/chromium and playwright (the test extras). Talks only to 127.0.0.1; stops
the server it started (by PID) before it exits.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import openai
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import start_serve

KEY = "screenshot-key"
PROMPTS = ["Name three colours of the rainbow.", "Count to five.", "Say hello in French.",
           "What is the capital of Italy?", "Write a haiku about rain."]


def _traffic(url: str, until: float, worker: int) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=120)
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
        sp = start_serve(["--api-key", KEY, "--replicas", "2", "--parallel", "2", "--policy", "prefix"], Path(tmp))
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
