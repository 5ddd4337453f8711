"""The HTML report renders in headless Chromium: plots drawn, no errors, nothing fetched."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferplane.bench.analysis import analyze
from inferplane.bench.provenance import ClientHost, TargetInfo
from inferplane.bench.records import RequestRecord
from inferplane.bench.report import BenchReport, Provenance, SweepInfo, write_report
from inferplane.bench.runner import LoadConfig, LoadResult
from inferplane.bench.slo import parse_slos

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(60),
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian chromium not installed at /usr/bin/chromium"
    ),
]


def _records(n: int, ttft_ms: float) -> tuple[RequestRecord, ...]:
    out = []
    for i in range(n):
        send = i * 200_000_000
        chunks = tuple(send + int((ttft_ms + 15 * k) * 1e6) for k in range(10))
        out.append(
            RequestRecord(
                i,
                True,
                True,
                send,
                send,
                chunks[-1],
                chunks[0],
                chunks[0],
                chunks[-1],
                chunks,
                10,
                "usage",
                10,
                30,
                "usage",
            )
        )
    return tuple(out)


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    runs = tuple(
        analyze(
            f"rate={r}",
            LoadConfig(rate=r),
            LoadResult(_records(25, t), (20.0,), 5.0),
            parse_slos("ttft=300ms"),
        )
        for r, t in ((1.0, 100.0), (2.0, 200.0))
    )
    host = ClientHost("h", "linux", "3.11", 2, "cpu", "source", "2025-01-01T00:00:00Z")
    prov = Provenance(
        TargetInfo("http://127.0.0.1:1", ("m",)),
        host,
        "m",
        "chat",
        True,
        "synthetic",
        {},
        None,
        0,
        (),
    )
    paths = write_report(BenchReport(prov, runs, SweepInfo("rate", (1.0, 2.0))), tmp_path)
    errors: list[str] = []
    requests: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page()
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda req: requests.append(req.url))
            page.goto(paths["html"].as_uri())
            assert "inferplane bench" in page.title()
            charts = page.locator("svg.chart")
            assert charts.count() >= 8  # 4 CDFs + 2 sweep plots + 2 per run time series
            box = charts.first.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 200
            assert page.locator("svg.chart polyline").count() >= 8  # lines actually drawn
            assert page.get_by_text("Latency vs throughput").count() >= 1
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert [u for u in requests if not u.startswith("file://")] == []
    assert (tmp_path / "report.png").stat().st_size > 10_000
