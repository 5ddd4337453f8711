"""Measure candidates one at a time, through the same path users run: ``inferplane serve --config``.

For each candidate:

1. write its one-deployment config (a fresh free port) under ``<out>/runs/<id>/deploy.yaml``;
2. start ``python -m inferplane serve --config ...`` in its own session (so a terminal Ctrl-C
   reaches only ``choose``, which then stops it in order), with ``PR_SET_PDEATHSIG`` = SIGTERM
   on Linux so it also stops, replicas included, if ``choose`` itself is killed;
3. wait for ``/ready``; run a warm-up (synthetic prompts with their own nonce, discarded) and
   then the workload with a nonce unique to this run, so no prompt cache is warm;
4. stop it: SIGTERM to its PID, wait (serve stops its replicas), SIGKILL to its group only if
   it overstays ``stop_timeout_s``;
5. append the result to ``<out>/results.jsonl`` and write the bench report of the run.

``KeyboardInterrupt`` (Ctrl-C, or SIGTERM turned into it by the CLI) stops the current
candidate the same way, records it as "interrupted" and re-raises: results already appended
survive.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import yaml
from rich.console import Console

from inferplane.bench import replay
from inferplane.bench import workloads as wl
from inferplane.bench.analysis import RunOutcome, analyze
from inferplane.bench.client import ClientConfig
from inferplane.bench.display import LiveDisplay
from inferplane.bench.preflight import preflight
from inferplane.bench.provenance import TargetInfo, client_host
from inferplane.bench.report import BenchReport, Provenance, write_report
from inferplane.bench.runner import LiveCounters, LoadConfig, run_load
from inferplane.bench.slo import SloTarget
from inferplane.choose.plan import Candidate, WorkloadSpec
from inferplane.choose.results import CandidateResult, from_outcome, not_measured
from inferplane.console import make_console

__all__ = ["MeasureConfig", "ServeHandle", "build_workload", "load_results", "measure_all", "measure_one"]

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class MeasureConfig:
    out_dir: Path
    workload: WorkloadSpec
    slos: tuple[SloTarget, ...] = ()
    nonce: str = ""
    """Base of the per-run prompt nonces (random by default)."""
    stop_timeout_s: float = 60.0
    scrape_interval_s: float = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_workload(spec: WorkloadSpec, nonce: str, template_tokens: int = 0) -> wl.Workload:
    """The measured requests of one run (raises ``WorkloadError`` e.g. when ShareGPT is missing).

    ``template_tokens``: the candidate's chat-template tokens, for trace replays (bench/replay.py)."""
    if spec.kind == "sharegpt":
        return wl.sharegpt(spec.requests, seed=spec.seed, max_tokens=spec.max_tokens)
    if spec.kind == "shared-prefix":
        return wl.shared_prefix(spec.requests, groups=4, system_len=spec.input_len, question_len=32,
                                output_len=spec.output_len, seed=spec.seed, nonce=nonce)
    if spec.is_trace:
        return replay.trace_file(Path(spec.kind[6:]), speed=spec.trace_speed, limit=spec.requests,
                                 default_max_tokens=spec.output_len, seed=spec.seed, nonce=nonce,
                                 template_tokens=template_tokens)
    if spec.kind == "synthetic":
        return wl.synthetic(spec.requests, input_len=spec.input_len, output_len=spec.output_len,
                            seed=spec.seed, nonce=nonce)
    raise wl.WorkloadError(f"unknown workload {spec.kind!r}: use synthetic, sharegpt, shared-prefix or trace:FILE")


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ServeHandle:
    """One ``inferplane serve`` child. ``stop()`` is idempotent and always leaves no process behind."""

    def __init__(self, config_path: Path, port: int, log_path: Path, replica_logs: Path) -> None:
        self.port = port
        self.log_path = log_path
        cmd = [sys.executable, "-m", "inferplane", "serve", "--config", str(config_path),
               "--log-dir", str(replica_logs)]
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_set_pdeathsig if sys.platform == "linux" else None,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout_s: float) -> None:
        """Return once /ready says 200. Raises ``RuntimeError`` with the log tail if serve exits or times out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"inferplane serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"not ready after {timeout_s:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM to serve's PID and wait; SIGKILL its process group if it overstays."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(10)
            return self.proc.returncode
        finally:
            self._log.close()


def _write_config(c: Candidate, cfg: MeasureConfig, run_dir: Path, port: int) -> Path:
    doc = {"gateway": {"host": "127.0.0.1", "port": port, "scrape_interval_s": cfg.scrape_interval_s,
                       "ready_timeout_s": c.deployment.ready_timeout_s or 300.0},
           "deployments": [c.deployment.model_dump(mode="json", exclude_unset=True)
                           | {"name": c.deployment.name, "runtime": c.runtime}]}
    path = run_dir / "deploy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def measure_one(c: Candidate, cfg: MeasureConfig, index: int, say: Say,
                console: Console | None = None) -> CandidateResult:
    """Launch, warm up, run and stop one candidate. Failures become a "failed" result;
    ``KeyboardInterrupt`` stops the candidate and propagates."""
    run_dir = cfg.out_dir / "runs" / c.id
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    serve = ServeHandle(_write_config(c, cfg, run_dir, port), port, run_dir / "serve.log", run_dir / "replica-logs")
    t0 = time.monotonic()
    startup: float | None = None
    try:
        serve.wait_ready((c.deployment.ready_timeout_s or 300.0) + 30)
        startup = time.monotonic() - t0
        say(f"  ready in {startup:.1f} s on {serve.url}; warming up and running the workload")
        client = ClientConfig(base_url=serve.url, model=c.deployment.name, request_timeout_s=300.0)
        spec = cfg.workload
        nonce = f"{cfg.nonce}-{index}-{c.id}"
        if spec.warmup_requests:
            warm = wl.synthetic(spec.warmup_requests, input_len=32, output_len=8, seed=spec.seed + 1,
                                nonce=f"warmup-{nonce}")
            run_load(warm, client, LoadConfig(concurrency=min(spec.warmup_requests, spec.concurrency)))
        load = LoadConfig(trace_timing=True, seed=spec.seed) if spec.is_trace else \
            LoadConfig(concurrency=spec.concurrency, seed=spec.seed)
        template = 0
        if spec.is_trace:  # the replayed prompts' lengths include this candidate's chat template
            probe = asyncio.run(preflight(serve.url, c.deployment.name, api="chat", api_key=None, timeout_s=120.0))
            template = probe.template_tokens
        work = build_workload(spec, nonce, template)
        counters = LiveCounters(1, shared=False)
        with LiveDisplay(console or make_console(stderr=True), c.label, spec.requests, counters,
                         enabled=console is not None) as live:
            result = run_load(work, client, load, n=spec.requests, counters=counters, tick=live.tick)
        outcome = analyze(c.label, load, result, cfg.slos)
        _write_bench_report(c, cfg, outcome, work, serve.url, run_dir)
        return from_outcome(c, outcome, cfg.slos, startup_s=startup, report_dir=str(run_dir))
    except KeyboardInterrupt:
        _append(cfg.out_dir, not_measured(c, "interrupted", "stopped by the user (Ctrl-C or SIGTERM)", startup))
        raise
    except (RuntimeError, OSError, ValueError) as exc:
        return not_measured(c, "failed", str(exc), startup)
    finally:
        code = serve.stop(cfg.stop_timeout_s)
        if code not in (0, None, -signal.SIGTERM):
            say(f"  note: inferplane serve exited with {code} (log: {serve.log_path})")


def _write_bench_report(c: Candidate, cfg: MeasureConfig, outcome: RunOutcome, work: wl.Workload, url: str,
                        run_dir: Path) -> None:
    prov = Provenance(
        target=TargetInfo(url), host=client_host(), model=c.deployment.name, api="chat", stream=True,
        workload=cfg.workload.kind, workload_params=work.params, dataset_sha256=work.dataset_sha256,
        seed=cfg.workload.seed, slos=tuple(s.label() for s in cfg.slos), command=tuple(sys.argv),
    )  # fmt: skip
    write_report(BenchReport(prov, (outcome,), notes=(f"inferplane choose candidate {c.label}",)), run_dir / "bench")


def _append(out_dir: Path, result: CandidateResult) -> None:
    with (out_dir / "results.jsonl").open("ab") as fh:
        fh.write(orjson.dumps(result.to_dict()) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def load_results(out_dir: Path) -> list[CandidateResult]:
    """Results saved so far (a half-written last line, from a hard kill, is ignored)."""
    path = out_dir / "results.jsonl"
    out = []
    if path.exists():
        for line in path.read_bytes().splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                out.append(CandidateResult.from_dict(orjson.loads(line)))
    return out


def measure_all(candidates: Sequence[Candidate], cfg: MeasureConfig, say: Say,
                console: Console | None = None) -> list[CandidateResult]:
    """Measure each candidate in turn, saving each result as it completes.

    On ``KeyboardInterrupt`` returns what completed (the interrupted one included) and
    re-raises nothing: the caller checks ``len(results) < len(candidates)``.
    """
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    results: list[CandidateResult] = []
    for i, c in enumerate(candidates):
        say(f"[{i + 1}/{len(candidates)}] {c.label}: starting (expected ~{c.expected_s:.0f} s)")
        try:
            r = measure_one(c, cfg, i, say, console)
        except KeyboardInterrupt:
            results.append(not_measured(c, "interrupted", "stopped by the user (Ctrl-C or SIGTERM)"))
            say("  interrupted: the candidate was stopped; results so far are kept")
            break
        _append(cfg.out_dir, r)
        results.append(r)
        if r.ok:
            say(f"  done: {r.n_ok}/{r.n_requests} ok, goodput {r.goodput_rps:.3g} req/s, "
                f"{r.output_throughput:.1f} out tok/s, TTFT p95 {r.ttft_p95_s * 1e3:.0f} ms")
        else:
            say(f"  {r.status}: {r.error.splitlines()[0] if r.error else ''}")
    return results
