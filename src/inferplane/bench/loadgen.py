"""The load generator of one event loop: closed loop, open loop and sessions.

A ``WorkerPlan`` is plain picklable data (one per client process). ``run_worker`` drives it:

1. opens one ``aiohttp.ClientSession`` with an unbounded keep-alive pool;
2. sends the warm-up requests (not recorded);
3. waits for ``t0`` (shared across processes: CLOCK_MONOTONIC is host-wide);
4. closed loop: ``concurrency`` users each send, wait for the whole response, think, repeat;
   open loop: a dispatcher starts each job at ``t0 + offset`` without waiting for earlier
   ones (optionally capped at ``max_in_flight``);
5. returns the records and the process CPU time used.

``t_sched`` is the planned send time: ``t0 + offset`` in open loop, the moment the user was
ready (previous close + think time) in closed loop. Jobs are single requests with
pre-serialized bodies, or multi-turn sessions whose turns are sent one after another.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import aiohttp

from inferplane.bench.client import ClientConfig, build_body, send_request
from inferplane.bench.records import RequestRecord
from inferplane.bench.workloads import Message, Session

__all__ = ["Job", "WorkerPlan", "WorkerResult", "run_worker"]

_now = time.monotonic_ns


@dataclass(frozen=True, slots=True)
class Job:
    """A single request (``body``) or a session; ``index`` is the global index of its first request."""

    index: int
    body: bytes = b""
    isl_estimate: int = 0
    session: Session | None = None
    offset_s: float | None = None
    """Open loop: planned send time after t0."""


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """What one client process sends. ``concurrency`` set = closed loop, else open loop on offsets."""

    client: ClientConfig
    jobs: tuple[Job, ...]
    concurrency: int | None = None
    max_in_flight: int | None = None
    think_time_s: float = 0.0
    duration_s: float | None = None
    """Closed loop: stop starting jobs after this long (jobs are cycled); open loop: stop dispatching."""
    warmup: tuple[bytes, ...] = ()
    worker: int = 0
    cycle: bool = False


@dataclass(frozen=True, slots=True)
class WorkerResult:
    """Records of one worker plus its CPU use over the measured phase."""

    records: tuple[RequestRecord, ...]
    cpu_s: float
    wall_s: float
    worker: int = 0
    texts: tuple[str, ...] = field(default=(), repr=False)


Progress = Callable[[RequestRecord], None]


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def make_session(timeout_s: float | None = None) -> aiohttp.ClientSession:
    """One pooled session: keep-alive, no connection cap, big read buffer, no decompression."""
    connector = aiohttp.TCPConnector(
        limit=0, limit_per_host=0, ttl_dns_cache=None, use_dns_cache=True
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        read_bufsize=1 << 18,
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    )


class _Runner:
    """Mutable state of one run inside one event loop (owner of all its tasks)."""

    def __init__(
        self, plan: WorkerPlan, http: aiohttp.ClientSession, progress: Progress | None
    ) -> None:
        self.plan = plan
        self.http = http
        self.progress = progress
        self.records: list[RequestRecord] = []
        self.next_job = 0

    def _done(self, rec: RequestRecord) -> None:
        self.records.append(rec)
        if self.progress is not None:
            self.progress(rec)

    async def job(self, job: Job, t_sched: int, index: int) -> int:
        """Run one job; returns the close time of its last request."""
        cfg = self.plan.client
        if job.session is None:
            rec, _ = await send_request(
                self.http,
                cfg,
                job.body,
                index=index,
                t_sched_ns=t_sched,
                isl_estimate=job.isl_estimate,
                worker=self.plan.worker,
            )
            self._done(rec)
            return rec.t_close_ns
        s = job.session
        history: list[Message] = [("system", s.system)] if s.system else []
        t = t_sched
        last = t_sched
        for turn, (user, max_tokens) in enumerate(zip(s.user_turns, s.max_tokens, strict=True)):
            history.append(("user", user))
            body = build_body(cfg, tuple(history), max_tokens)
            rec, text = await send_request(
                self.http,
                cfg,
                body,
                index=index + turn,
                t_sched_ns=t,
                worker=self.plan.worker,
                session_id=job.index,
                turn=turn,
            )
            self._done(rec)
            last = rec.t_close_ns
            if not rec.ok:
                break
            history.append(("assistant", text))
            t = rec.t_close_ns + int(self.plan.think_time_s * 1e9)
            if self.plan.think_time_s:
                await asyncio.sleep(self.plan.think_time_s)
        return last

    def _take(self, deadline: int | None) -> tuple[Job, int] | None:
        jobs = self.plan.jobs
        i = self.next_job
        if deadline is not None and _now() >= deadline:
            return None
        if i >= len(jobs) and not (self.plan.cycle and deadline is not None):
            return None
        self.next_job += 1
        job = jobs[i % len(jobs)]
        # Cycled jobs get fresh global indices beyond the plan's range.
        return job, job.index if i < len(jobs) else job.index + (i // len(jobs)) * 1_000_000_000

    async def user(self, t0: int, deadline: int | None) -> None:
        ready = t0
        think = int(self.plan.think_time_s * 1e9)
        while (taken := self._take(deadline)) is not None:
            job, index = taken
            closed = await self.job(job, ready, index)
            ready = closed + think
            if think:
                await asyncio.sleep(self.plan.think_time_s)

    async def dispatch(self, t0: int, deadline: int | None) -> None:
        cap = asyncio.Semaphore(self.plan.max_in_flight) if self.plan.max_in_flight else None
        tasks: set[asyncio.Task[int]] = set()

        async def capped(job: Job, t_sched: int) -> int:
            assert cap is not None
            try:
                return await self.job(job, t_sched, job.index)
            finally:
                cap.release()

        for job in self.plan.jobs:
            target = t0 + int((job.offset_s or 0.0) * 1e9)
            if deadline is not None and target >= deadline:
                break
            delay = target - _now()
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
            if cap is not None:
                await cap.acquire()
                task = asyncio.create_task(capped(job, target))
            else:
                task = asyncio.create_task(self.job(job, target, job.index))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)


async def run_worker(
    plan: WorkerPlan,
    *,
    t0_ns: int | None = None,
    start: Callable[[], Awaitable[int]] | None = None,
    progress: Progress | None = None,
) -> WorkerResult:
    """Execute ``plan`` on the running loop.

    The measured phase starts at ``t0_ns``, or at the time ``start()`` returns (awaited after
    the warm-up; used to line up worker processes), or now.
    """
    async with make_session(plan.client.request_timeout_s) as http:
        runner = _Runner(plan, http, None)
        if plan.warmup:
            await _warmup(runner, plan.warmup, plan.concurrency or 4)
        runner.progress = progress
        if start is not None:
            t0 = await start()
        else:
            t0 = t0_ns if t0_ns is not None else _now()
        delay = t0 - _now()
        if delay > 0:
            await asyncio.sleep(delay / 1e9)
        cpu0, wall0 = _cpu_s(), _now()
        deadline = t0 + int(plan.duration_s * 1e9) if plan.duration_s else None
        if plan.concurrency is not None:
            await asyncio.gather(*(runner.user(t0, deadline) for _ in range(plan.concurrency)))
        else:
            await runner.dispatch(t0, deadline)
        cpu, wall = _cpu_s() - cpu0, (_now() - wall0) / 1e9
    return WorkerResult(tuple(runner.records), cpu, wall, plan.worker)


async def _warmup(runner: _Runner, bodies: Sequence[bytes], concurrency: int) -> None:
    queue = list(bodies)

    async def one() -> None:
        while queue:
            body = queue.pop()
            await send_request(runner.http, runner.plan.client, body, index=-1, t_sched_ns=_now())

    await asyncio.gather(*(one() for _ in range(min(concurrency, len(queue)))))
