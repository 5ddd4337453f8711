"""Report files: versioned JSON with provenance and definitions, JSONL, CSV, self-contained HTML."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from inferplane.bench.records import RequestRecord
from inferplane.bench.report import SCHEMA_VERSION, BenchReport, write_report


def test_files_written_and_consistent(tmp_path: Path, sample_report: BenchReport) -> None:
    paths = write_report(sample_report, tmp_path / "out", csv_append=tmp_path / "all.csv")
    summary = json.loads(paths["json"].read_text())
    assert summary["schema_version"] == SCHEMA_VERSION and summary["kind"] == "inferplane-bench"
    assert summary["provenance"]["target"]["url"] == "http://127.0.0.1:1"
    assert "TTFT" in summary["definitions"] and "Hyndman" in summary["definitions"]["percentiles"]
    run0 = summary["runs"][0]
    assert run0["metrics"]["n_failed"] == 2 and run0["metrics"]["errors"] == {"http_500": 2}
    assert run0["metrics"]["ttft_error_adjusted"]["max"] == "inf"
    assert run0["load"]["mode"] == "open"
    assert summary["sweep"]["best_passing"] == 4.0

    lines = paths["jsonl"].read_text().splitlines()
    assert len(lines) == 90
    rec = json.loads(lines[0])
    assert rec["run"] == "rate=2" and rec["t_sched_ns"] == 0
    again = RequestRecord.from_dict({k: v for k, v in rec.items() if k != "run"})
    assert again.osl == 8 and len(again.chunk_times_ns) == 8

    rows = list(csv.DictReader(paths["csv"].open()))
    assert [r["label"] for r in rows] == ["rate=2", "rate=4", "rate=8"]
    assert float(rows[0]["ttft_p50_ms"]) == 100.0
    write_report(sample_report, tmp_path / "out2", csv_append=tmp_path / "all.csv")
    assert len(list(csv.DictReader((tmp_path / "all.csv").open()))) == 6  # header written once

    html = paths["html"].read_text()
    assert html.count("<svg") >= 4 + 2 + 2 * 3
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", html)  # self-contained
    assert "<script" not in html
    assert "Definitions" in html and "ttft_p99&lt;=300ms" in html
