"""Turn a workload and a load configuration into worker plans, run them, gather the records.

With ``workers == 1`` the load runs on a uvloop loop in this process; with more, each worker
is a spawned process with its own loop and connection pool, all starting at one shared
``t0`` after every worker has finished its warm-up. Progress is reported through
``LiveCounters`` (shared memory across processes).
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.sharedctypes import SynchronizedArray
from typing import Any

import orjson

from inferplane.bench.client import ClientConfig, request_body
from inferplane.bench.loadgen import Job, WorkerPlan, WorkerResult, run_worker
from inferplane.bench.records import RequestRecord
from inferplane.bench.schedule import Arrival, arrival_offsets, stage_offsets
from inferplane.bench.workloads import Workload

__all__ = ["LiveCounters", "LoadConfig", "LoadResult", "run_load"]

_START_MARGIN_NS = 50_000_000


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """How load is applied. Exactly one of: ``concurrency`` (closed loop), ``rate`` (open loop),
    ``stages`` (open-loop ramp), ``burst`` or ``trace_timing`` (replay the workload's offsets)."""

    concurrency: int | None = None
    rate: float | None = None
    arrival: Arrival = "poisson"
    burstiness: float = 1.0
    stages: tuple[tuple[float, float], ...] = ()
    burst: bool = False
    trace_timing: bool = False
    max_in_flight: int | None = None
    duration_s: float | None = None
    think_time_s: float = 0.0
    warmup_requests: int = 0
    workers: int = 1
    seed: int = 0

    @property
    def mode(self) -> str:
        """``closed``, ``open``, ``stages``, ``burst`` or ``trace``."""
        if self.concurrency is not None:
            return "closed"
        if self.stages:
            return "stages"
        if self.burst:
            return "burst"
        if self.trace_timing:
            return "trace"
        return "open"

    def describe(self) -> str:
        """Short label, e.g. ``closed c=8`` or ``open poisson 20 req/s``."""
        if self.mode == "closed":
            return f"closed c={self.concurrency}"
        if self.mode == "open":
            extra = f" b={self.burstiness:g}" if self.arrival == "gamma" else ""
            return f"open {self.arrival}{extra} {self.rate:g} req/s"
        if self.mode == "stages":
            return "stages " + ",".join(f"{r:g}:{d:g}" for r, d in self.stages)
        return self.mode

    def offsets(self, n: int) -> list[float] | None:
        """Send offsets of ``n`` jobs in open-loop modes; ``None`` for closed loop."""
        if self.mode == "open":
            if not self.rate or self.rate <= 0:
                raise ValueError("open loop needs --rate > 0")
            return arrival_offsets(
                n, self.rate, self.arrival, burstiness=self.burstiness, seed=self.seed
            )
        if self.mode == "stages":
            return stage_offsets(
                self.stages, self.arrival, burstiness=self.burstiness, seed=self.seed
            )[:n]
        if self.mode == "burst":
            return [0.0] * n
        return None

    def planned_requests(self, default: int) -> int:
        """How many requests the workload must provide for this load."""
        if self.mode == "stages":
            return len(
                stage_offsets(self.stages, self.arrival, burstiness=self.burstiness, seed=self.seed)
            )
        if self.mode == "open" and self.duration_s and self.rate:
            return max(1, math.ceil(self.rate * self.duration_s))
        return default


class LiveCounters:
    """Completed / failed / output-token counters per worker, readable from the parent."""

    FIELDS = 3

    def __init__(self, workers: int, shared: bool) -> None:
        size = workers * self.FIELDS
        self.array: SynchronizedArray[float] | list[float] = (
            mp.get_context("spawn").Array("d", size, lock=False) if shared else [0.0] * size  # type: ignore[assignment]
        )

    @classmethod
    def from_array(cls, array: SynchronizedArray[float]) -> LiveCounters:
        """Counters over an existing shared array (inside a worker process)."""
        obj = cls.__new__(cls)
        obj.array = array
        return obj

    def sink(self, worker: int) -> Callable[[RequestRecord], None]:
        """Callback for ``run_worker(progress=...)``: counts one finished request."""
        arr, base = self.array, worker * self.FIELDS

        def on_record(rec: RequestRecord) -> None:
            arr[base] += 1
            if not rec.ok:
                arr[base + 1] += 1
            arr[base + 2] += rec.osl or 0

        return on_record

    def totals(self) -> tuple[int, int, float]:
        """(done, failed, output tokens) over all workers."""
        arr = [float(v) for v in self.array]  # type: ignore[union-attr]
        f = self.FIELDS
        return int(sum(arr[0::f])), int(sum(arr[1::f])), sum(arr[2::f])


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Records (sorted by t_sched) and client-side measurements of one run."""

    records: tuple[RequestRecord, ...]
    worker_cpu_pct: tuple[float, ...]
    wall_s: float


def build_jobs(
    workload: Workload, client: ClientConfig, load: LoadConfig, n: int | None
) -> tuple[Job, ...]:
    """Jobs of the run (request bodies pre-serialized). ``n`` cycles or truncates the workload."""
    if workload.sessions:
        jobs, index = [], 0
        for s in workload.sessions[: n or None]:
            jobs.append(Job(index=index, session=s))
            index += len(s.user_turns)
    else:
        reqs = workload.requests
        count = n if n is not None else len(reqs)
        bodies = [request_body(client, r) for r in reqs]
        jobs = [
            Job(
                index=i,
                body=bodies[i % len(reqs)],
                isl_estimate=reqs[i % len(reqs)].input_tokens_estimate,
            )
            for i in range(count)
        ]
    if load.mode == "trace":
        offsets = [r.at_s or 0.0 for r in workload.requests[: len(jobs)]]
    else:
        offsets = load.offsets(len(jobs))  # type: ignore[assignment]
    if offsets is not None:
        jobs = [replace(j, offset_s=o) for j, o in zip(jobs, offsets, strict=False)]
    return tuple(jobs)


def split_plans(
    jobs: tuple[Job, ...], client: ClientConfig, load: LoadConfig, warmup: tuple[bytes, ...]
) -> list[WorkerPlan]:
    """One plan per worker: jobs round-robin, closed-loop users and in-flight cap split evenly."""
    w = max(1, load.workers)
    plans = []
    for k in range(w):
        conc = _share(load.concurrency, k, w) if load.concurrency is not None else None
        cap = max(1, _share(load.max_in_flight, k, w)) if load.max_in_flight else None
        plans.append(
            WorkerPlan(
                client=client,
                jobs=jobs[k::w],
                concurrency=conc,
                max_in_flight=cap,
                think_time_s=load.think_time_s,
                duration_s=load.duration_s,
                warmup=warmup[k::w],
                worker=k,
                cycle=load.mode == "closed" and load.duration_s is not None,
            )
        )
    return [p for p in plans if p.concurrency != 0 and p.jobs]


def _share(total: int, k: int, w: int) -> int:
    """Worker ``k``'s part of ``total`` split as evenly as possible over ``w`` workers."""
    return total // w + (1 if k < total % w else 0)


def run_load(
    workload: Workload,
    client: ClientConfig,
    load: LoadConfig,
    *,
    n: int | None = None,
    counters: LiveCounters | None = None,
    tick: Callable[[], None] | None = None,
) -> LoadResult:
    """Run the load to completion (blocking). ``tick`` is called ~4x/s for progress display."""
    jobs = build_jobs(workload, client, load, n)
    warm_src = workload.requests or ()
    warmup = (
        tuple(
            request_body(client, warm_src[i % len(warm_src)]) for i in range(load.warmup_requests)
        )
        if warm_src
        else ()
    )
    plans = split_plans(jobs, client, load, warmup)
    if not plans:
        raise ValueError("nothing to run: no jobs or zero concurrency")
    counters = counters or LiveCounters(len(plans), shared=len(plans) > 1)
    start = time.monotonic()
    if len(plans) == 1:
        results = [_run_in_process(plans[0], counters, tick)]
    else:
        results = _run_processes(plans, counters, tick)
    records = sorted(
        (r for res in results for r in res.records), key=lambda r: (r.t_sched_ns, r.index)
    )
    cpu = tuple(100.0 * res.cpu_s / res.wall_s if res.wall_s > 0 else 0.0 for res in results)
    return LoadResult(tuple(records), cpu, time.monotonic() - start)


def _loop_runner() -> Callable[..., WorkerResult]:
    try:
        import uvloop

        return uvloop.run  # type: ignore[no-any-return]
    except ImportError:  # pragma: no cover - uvloop is not on every platform
        return asyncio.run


def _run_in_process(
    plan: WorkerPlan, counters: LiveCounters, tick: Callable[[], None] | None
) -> WorkerResult:
    async def main() -> WorkerResult:
        ticker = asyncio.create_task(_ticker(tick)) if tick else None
        try:
            return await run_worker(plan, progress=counters.sink(plan.worker))
        finally:
            if ticker is not None:
                ticker.cancel()

    return _loop_runner()(main())


async def _ticker(tick: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(0.25)
        tick()


def _run_processes(
    plans: list[WorkerPlan], counters: LiveCounters, tick: Callable[[], None] | None
) -> list[WorkerResult]:
    ctx = mp.get_context("spawn")
    ready = ctx.Barrier(len(plans) + 1)
    t0 = ctx.Value("q", 0, lock=False)
    conns, procs = [], []
    for plan in plans:
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_worker_main, args=(plan, counters.array, ready, t0, child), daemon=True
        )
        proc.start()
        child.close()
        conns.append(parent)
        procs.append(proc)
    try:
        ready.wait(timeout=120)
        t0.value = time.monotonic_ns() + _START_MARGIN_NS
        ready.wait(timeout=10)
        results: dict[int, WorkerResult] = {}
        while len(results) < len(conns):
            for k, conn in enumerate(conns):
                if k not in results and conn.poll(0.05):
                    results[k] = _decode_result(conn.recv_bytes())
            if tick is not None:
                tick()
            dead = [
                p
                for k, p in enumerate(procs)
                if k not in results and not p.is_alive() and not conns[k].poll()
            ]
            if dead:
                raise RuntimeError(f"client worker exited with code {dead[0].exitcode}")
        return [results[k] for k in sorted(results)]
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()


def _worker_main(
    plan: WorkerPlan, array: SynchronizedArray[float], ready: Any, t0: Any, conn: Any
) -> None:
    """Entry point of a spawned client process: warm up, meet the others at the barrier, run."""
    counters = LiveCounters.from_array(array)

    async def start() -> int:
        loop = asyncio.get_running_loop()
        # Barrier 1: everyone warmed up, parent sets t0. Barrier 2: t0 is visible.
        await loop.run_in_executor(None, ready.wait)
        await loop.run_in_executor(None, ready.wait)
        return int(t0.value)

    result = _loop_runner()(run_worker(plan, start=start, progress=counters.sink(plan.worker)))
    conn.send_bytes(_encode_result(result))


def _encode_result(res: WorkerResult) -> bytes:
    return orjson.dumps(
        {
            "records": [r.to_dict() for r in res.records],
            "cpu_s": res.cpu_s,
            "wall_s": res.wall_s,
            "worker": res.worker,
        }
    )


def _decode_result(raw: bytes) -> WorkerResult:
    obj = orjson.loads(raw)
    records = tuple(RequestRecord.from_dict(d) for d in obj["records"])
    return WorkerResult(records, obj["cpu_s"], obj["wall_s"], obj["worker"])
