"""``inferplane serve``: builds the gateway, launches and supervises replicas, runs until a signal.

Order of events:
1. Models that must be local files are resolved (and pulled into the store if missing);
   every deployment is checked against its runtime (installed? launchable?) before
   anything starts, so a bad config fails fast with a clear message.
2. The gateway starts listening (``/health`` answers at once, ``/ready`` says 503 until
   replicas are ready).
3. Replicas are launched and supervised; existing endpoints from the config are probed.
4. On SIGINT/SIGTERM: stop accepting, stop every replica (SIGTERM, then SIGKILL), exit.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from inferplane.choose.hardware import parse_meminfo
from inferplane.choose.model_info import ModelInfoError, read_gguf
from inferplane.config import DeploymentConfig, InferplaneConfig
from inferplane.gateway import http1
from inferplane.gateway.app import Gateway
from inferplane.models import CATALOG, ModelError, ModelStore
from inferplane.placement.cpu import threads_per_replica, usable_cores
from inferplane.placement.gpus import GpuShortage, assign_gpus
from inferplane.placement.local import ReplicaUp, SupervisedReplica
from inferplane.routing.health import HealthChecker
from inferplane.routing.registry import Endpoint, EndpointRegistry
from inferplane.runtimes._common import nvidia_gpu_ids
from inferplane.runtimes.base import LaunchError, Resources
from inferplane.runtimes.discovery import Finding, survey
from inferplane.runtimes.embedded import default_context_tokens
from inferplane.runtimes.registry import UnknownRuntimeError, get_adapter

__all__ = ["ServeError", "prepare_deployments", "run_server"]

log = logging.getLogger("inferplane")

_SURVEY_TIMEOUT_S = 3.0
"""How long ``serve`` waits for a listed endpoint's model list at start (it keeps checking after)."""


class ServeError(Exception):
    """The server cannot start; the message says why and what to do."""


def prepare_deployments(config: InferplaneConfig, store: ModelStore, progress: Callable[[str], None], *,
                        fetch: bool = True) -> tuple[DeploymentConfig, ...]:
    """Deployments with local model paths resolved, each checked against its runtime.

    Raises ServeError for anything ``serve`` would fail on: unknown or unusable runtimes,
    models that are not there or not readable by the runtime, settings the runtime cannot
    honour. With ``fetch=False`` (``config validate``) a model-store name that is not
    downloaded yet counts as fine: ``serve`` pulls it.
    """
    out = []
    local_replicas = sum(d.replicas for d in config.deployments)
    local_sequences = sum(d.replicas * d.max_concurrent_sequences for d in config.deployments)
    cores = usable_cores()
    for dep in config.deployments:
        try:
            adapter = get_adapter(dep.runtime)
        except UnknownRuntimeError as exc:
            raise ServeError(f"deployment {dep.name!r}: {exc}") from exc
        if dep.replicas > 0:
            avail = adapter.availability_for(dep)
            if not avail.usable:
                raise ServeError(f"deployment {dep.name!r}: runtime {dep.runtime!r} is not usable here: {avail.reason}")
            caps = adapter.capabilities()
            if caps.needs_local_model_file:
                dep = _with_local_model(dep, caps.weight_formats, store, progress, fetch=fetch,
                                        sequences=local_sequences)
            threads = threads_per_replica(local_replicas, dep.threads, cores=cores)
            if dep.threads is None and "cpu" in adapter.capabilities().hardware:
                progress(f"{dep.name}: {threads} CPU thread(s) per replica ({cores} cores split across "
                         f"{local_replicas} local replica(s); set --threads or the deployment's threads to change)")
            dep = dep.model_copy(update={"threads": threads})
            try:
                adapter.launch_spec(dep, 0, Resources(threads=threads))
            except LaunchError as exc:
                raise ServeError(str(exc)) from exc
        out.append(dep)
    return tuple(out)


def _with_local_model(dep: DeploymentConfig, formats: tuple[str, ...], store: ModelStore,
                      progress: Callable[[str], None], *, fetch: bool, sequences: int) -> DeploymentConfig:
    """``dep`` with its model as a local path (pulled if needed) and, for GGUF runtimes, the file's
    header checked and the default context length set from it."""
    try:
        path = store.resolve(dep.model, progress=progress, fetch=fetch)
    except ModelError as exc:
        if fetch or dep.model not in CATALOG:
            raise ServeError(f"deployment {dep.name!r}: {exc}") from exc
        return dep.model_copy(update={"model": str(store.cached_path(CATALOG[dep.model]))})  # serve pulls it
    dep = dep.model_copy(update={"model": str(path)})
    if formats != ("gguf",):
        return dep
    if path.is_dir():
        raise ServeError(f"deployment {dep.name!r}: {path} is a folder; runtime {dep.runtime!r} serves one "
                         ".gguf file (pass the file, or pick a runtime for folders: `inferplane runtimes`)")
    try:
        info = read_gguf(path)
    except ModelInfoError as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        raise ServeError(f"deployment {dep.name!r}: cannot load model file {path}: {reason}") from exc
    if dep.context_length_tokens is None:
        ctx, why = default_context_tokens(
            trained_tokens=info.context_length_tokens, kv_bytes_per_token=info.kv_cache_bytes_per_token,
            sequences=sequences, replicas=1, memory_available_bytes=_memory_available_bytes())
        progress(f"{dep.name}: context {ctx} tokens per sequence ({why}; set --ctx-size or "
                 "context_length_tokens to change)")
        dep = dep.model_copy(update={"context_length_tokens": ctx})
    return dep


def _memory_available_bytes() -> int:
    try:
        return parse_meminfo(Path("/proc/meminfo").read_text())[1]
    except OSError:
        return 0


async def run_server(
    config: InferplaneConfig,
    deployments: tuple[DeploymentConfig, ...],
    *,
    log_dir: Path,
    say: Callable[[str], None],
    stop: asyncio.Event | None = None,
) -> int:
    """Serve until ``stop`` is set or SIGINT/SIGTERM arrives. Returns the exit code."""
    gw_cfg = config.gateway
    findings = await _survey_endpoints(deployments)
    registry = EndpointRegistry()
    gateway = Gateway(gw_cfg, deployments, registry)
    try:
        site = await http1.serve(gateway.handle, gw_cfg.host, gw_cfg.port, limits=gateway.http_limits())
    except OSError as exc:
        raise ServeError(f"cannot listen on {gw_cfg.host}:{gw_cfg.port}: {exc.strerror or exc}") from exc
    bound = site.sockets[0].getsockname()[:2] if site.sockets else (gw_cfg.host, gw_cfg.port)
    say(f"gateway listening on http://{bound[0]}:{bound[1]} (OpenAI API under /v1)")
    for dep in deployments:
        if dep.endpoints:
            say(_endpoints_line(dep, findings.get(dep.name)))

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    grants = iter(_gpu_grants(deployments))
    replicas: list[SupervisedReplica] = []
    for dep in deployments:
        adapter = get_adapter(dep.runtime)
        for i, target in enumerate(dep.endpoints):
            found = findings[dep.name][i] if dep.name in findings else None
            serves = found.match.model if found is not None and found.match is not None else None
            name = serves or dep.upstream_model
            ep = Endpoint(
                id=registry.new_id(dep.name), deployment=dep.name, runtime=dep.runtime, url=target.url,
                dialect=adapter.dialect_for(dep), capacity=dep.max_concurrent_sequences,
                region=target.region, priority=target.priority, managed=False, upstream_model=name or "",
            )
            registry.add(ep)
            if serves:  # it answered and serves the model: ready at once
                registry.set_ready(ep, True)
        for _ in range(dep.replicas):
            ep = Endpoint(
                id=registry.new_id(dep.name), deployment=dep.name, runtime=dep.runtime, url="",
                dialect=adapter.dialect_for(dep), capacity=dep.max_concurrent_sequences,
                region=dep.region, priority=dep.priority, managed=True,
            )
            registry.add(ep)
            replicas.append(SupervisedReplica(
                replica_id=ep.id, adapter=adapter, deployment=dep,
                resources=Resources(threads=dep.threads, gpu_ids=next(grants)), on_state=_state_setter(registry, ep),
                log_dir=log_dir, ready_timeout_s=dep.ready_timeout_s or gw_cfg.ready_timeout_s,
            ))
    for r in replicas:
        r.start()
    checker = HealthChecker(registry, interval_s=gw_cfg.scrape_interval_s)
    checker.start()

    # Everything built so far lives as long as the server: keep it out of the cyclic GC's
    # generations, and collect young objects less often (the hot path allocates little that
    # forms cycles), which cuts GC pauses from the tail latency.
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    code = 0
    try:
        waiting = asyncio.ensure_future(_announce_ready(replicas, deployments, say))
        stopped = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({waiting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if waiting in done and not waiting.result():
            code = 1
        else:
            await stopped
        waiting.cancel()
    finally:
        say("shutting down")
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        site.close()
        await asyncio.gather(*(r.stop() for r in replicas), return_exceptions=True)
        await checker.stop()
        gateway.close()
    return code


async def _survey_endpoints(deployments: tuple[DeploymentConfig, ...]) -> dict[str, list[Finding]]:
    """What each listed OpenAI-speaking endpoint serves; refuses to start when one serves
    several models and the deployment chose none (``upstream_model``)."""
    out: dict[str, list[Finding]] = {}
    for dep in deployments:
        if not dep.endpoints or not get_adapter(dep.runtime).dialect_for(dep).passthrough:
            continue
        found = await survey(tuple(t.url for t in dep.endpoints), deployment=dep.name,
                             wanted=dep.upstream_model, timeout_s=_SURVEY_TIMEOUT_S)
        for f in found:
            if f.match is not None and f.match.ambiguous:
                raise ServeError(f"deployment {dep.name!r}: endpoint {f.url}: {f.match.problem}")
        out[dep.name] = found
    return out


def _endpoints_line(dep: DeploymentConfig, found: list[Finding] | None) -> str:
    """``remote-llama: 1 of 1 endpoint(s) ready (vllm at http://..., model 'smollm2-vllm')``."""
    n = len(dep.endpoints)
    if found is None:  # not an OpenAI-speaking runtime: its own probe decides
        return (f"{dep.name}: {n} endpoint(s) of runtime {dep.runtime} listed "
                f"({', '.join(t.url for t in dep.endpoints)}); ready when its probe passes")
    ready = sum(1 for f in found if f.match is not None and f.match.model)
    details = "; ".join(f.line(dep.runtime) for f in found)
    if not ready:
        return (f"{dep.name}: 0 of {n} endpoint(s) ready yet ({details}); requests get 503 until one is "
                "(checked every scrape interval)")
    return f"{dep.name}: {ready} of {n} endpoint(s) ready ({details})"


def _gpu_grants(deployments: tuple[DeploymentConfig, ...]) -> list[tuple[int, ...]]:
    """GPUs for each local replica in launch order: tensor_parallel_size each for runtimes that
    run on NVIDIA GPUs, when this host has any; none otherwise (CPU mode)."""
    available = nvidia_gpu_ids()
    requests = []
    for dep in deployments:
        gpu_runtime = "nvidia" in get_adapter(dep.runtime).capabilities().hardware
        requests += [(dep.name, dep.tensor_parallel_size if gpu_runtime and available else 0)] * dep.replicas
    try:
        return assign_gpus(available, requests)
    except GpuShortage as exc:
        raise ServeError(str(exc)) from exc


def _state_setter(registry: EndpointRegistry, ep: Endpoint) -> Callable[[ReplicaUp | None], None]:
    def on_state(up: ReplicaUp | None) -> None:
        if up is not None:
            ep.url, ep.metrics_url, ep.pid = up.url, up.metrics_url, up.pid
        ep.hung, ep.probe_failures = False, 0
        registry.set_ready(ep, up is not None)

    return on_state


async def _announce_ready(replicas: list[SupervisedReplica], deployments: tuple[DeploymentConfig, ...],
                          say: Callable[[str], None]) -> bool:
    """Report each replica's first readiness; False if some deployment got no replica up."""
    results = await asyncio.gather(*(r.wait_ready() for r in replicas), return_exceptions=True)
    up: dict[str, int] = {}
    for r, res in zip(replicas, results, strict=False):
        if not isinstance(res, BaseException):  # a failure was logged, with its reason, where it happened
            up[r.deployment.name] = up.get(r.deployment.name, 0) + 1
    failed = [d.name for d in deployments if d.replicas and not up.get(d.name) and not d.endpoints]
    if failed:
        say(f"no replica of {', '.join(failed)} could start (the reason is above); stopping")
        return False
    for d in deployments:
        if d.replicas:
            say(f"model {d.name!r} ready: {up.get(d.name, 0)}/{d.replicas} local replica(s) "
                f"({d.runtime}, {d.model})")
    return True
