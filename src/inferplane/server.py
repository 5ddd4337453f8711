"""``inferplane serve``: the composition root. Builds the gateway and the control plane, runs until a signal.

Order of events:
1. Models that must be local files are resolved (and pulled into the store if missing);
   every deployment is checked against its runtime (installed? launchable?) before
   anything starts, so a bad config fails fast with a clear message.
2. The gateway starts listening (``/health`` answers at once, ``/ready`` says 503 until
   replicas are ready; requests that arrive meanwhile are held for a replica).
3. A deployment controller per deployment starts its replicas through the placement
   backend (local processes); existing endpoints from the config are probed; the
   autoscaler sets desired counts for deployments with ``autoscale:``.
4. SIGHUP (or ``POST /admin/reload``) re-reads the deployment file and applies the difference.
5. On SIGINT/SIGTERM: stop accepting connections, answer held requests 503, let requests
   in flight finish (at most ``gateway.drain_timeout_s``), stop every replica (SIGTERM,
   then SIGKILL), exit.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inferplane.autoscale import Autoscaler, SignalReader
from inferplane.choose.hardware import parse_meminfo
from inferplane.choose.model_info import ModelInfoError, read_gguf
from inferplane.config import DeploymentConfig, GatewayConfig, InferplaneConfig
from inferplane.config.models import ConfigError, ReplicaTarget, admin_key, load_config
from inferplane.errors import InferplaneError
from inferplane.gateway import http1
from inferplane.gateway.admin import AdminApi
from inferplane.gateway.app import Gateway
from inferplane.gateway.dashboard import FEED_PATH, PAGE_PATH, Dashboard, tenants_provider
from inferplane.gateway.tenancy.setup import Tenancy, build_tenancy
from inferplane.models import CATALOG, ModelError, ModelStore
from inferplane.observability.control_metrics import ControlCollector
from inferplane.observability.queue_metrics import QueueCollector
from inferplane.observability.recent import RecentRequests
from inferplane.observability.setup import OptionalObservers, optional_observers
from inferplane.observability.tenant_window import TenantWindows
from inferplane.placement.backend import PlacementBackend, PlacementError
from inferplane.placement.controller import NON_LAUNCH_FIELDS, same_launch
from inferplane.placement.cpu import threads_per_replica, usable_cores
from inferplane.placement.feed import EndpointFeed, EndpointFollower
from inferplane.placement.gpus import GpuShortage, assign_gpus
from inferplane.placement.local_backend import LocalBackend
from inferplane.placement.plane import ControlPlane
from inferplane.routing.fair import FairOrdering
from inferplane.routing.health import HealthChecker
from inferplane.routing.held import HeldQueue
from inferplane.routing.policies import PrefixPolicy
from inferplane.routing.registry import EndpointRegistry
from inferplane.runtimes._common import nvidia_gpu_ids
from inferplane.runtimes.access import (
    AccessTable,
    UpstreamAccess,
    access_for_endpoint,
    access_from_config,
)
from inferplane.runtimes.base import Capabilities, LaunchError, Resources
from inferplane.runtimes.discovery import Finding, survey
from inferplane.runtimes.embedded import default_context_tokens
from inferplane.runtimes.registry import UnknownRuntimeError, get_adapter
from inferplane.workers import FollowerProcesses

__all__ = ["ServeError", "prepare_deployments", "run_server"]

log = logging.getLogger("inferplane")

_SURVEY_TIMEOUT_S = 3.0
"""How long ``serve`` waits for a listed endpoint's model list at start (it keeps checking after)."""


class ServeError(InferplaneError):
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
    local_replicas = sum(d.max_local_replicas() for d in config.deployments)
    local_sequences = sum(d.max_local_replicas() * d.max_concurrent_sequences for d in config.deployments)
    cores = usable_cores()
    for dep in config.deployments:
        try:
            adapter = get_adapter(dep.runtime)
        except UnknownRuntimeError as exc:
            raise ServeError(f"deployment {dep.name!r}: {exc}") from exc
        _check_embeddings(dep, adapter.capabilities())
        key_env = dep.api_key_env or next((t.api_key_env for t in dep.endpoints if t.api_key_env), None)
        if key_env and adapter.dialect_for(dep).api_key_header is None:
            raise ServeError(f"deployment {dep.name!r}: runtime {dep.runtime!r} takes no API key, so api_key_env "
                             f"({key_env}) cannot be sent; remove it")
        if dep.max_local_replicas() > 0 and config.placement.follow is None:  # a follower launches nothing
            avail = adapter.availability_for(dep)  # on a cluster the runtime must be on the nodes, not here
            if not avail.usable and config.placement.backend == "local":
                raise ServeError(f"deployment {dep.name!r}: runtime {dep.runtime!r} is not usable here: {avail.reason}")
            caps = adapter.capabilities()
            if caps.needs_local_model_file:
                dep = _with_local_model(dep, caps.weight_formats, store, progress, fetch=fetch,
                                        sequences=local_sequences)
            threads = threads_per_replica(local_replicas, dep.threads, cores=cores)
            if config.placement.backend == "ray":
                threads = dep.threads or 1  # a node's cores are Ray's to share out: 1 CPU, as Ray Serve
                if dep.threads is None:
                    progress(f"{dep.name}: 1 CPU per replica on the Ray cluster (set the deployment's threads "
                             "to reserve more)")
            elif dep.threads is None and "cpu" in adapter.capabilities().hardware:
                progress(f"{dep.name}: {threads} CPU thread(s) per replica ({cores} cores split across "
                         f"{local_replicas} local replica(s); set --threads or the deployment's threads to change)")
            dep = dep.model_copy(update={"threads": threads})
            try:
                adapter.launch_spec(dep, 0, Resources(threads=threads))
            except LaunchError as exc:
                raise ServeError(str(exc)) from exc
        out.append(dep)
    return tuple(out)


def _check_embeddings(dep: DeploymentConfig, caps: Capabilities) -> None:
    """An ``embeddings: true`` deployment its runtime can serve (docs/openai-api.md)."""
    if not dep.embeddings:
        return
    if not caps.embeddings or caps.api != "openai":
        raise ServeError(f"deployment {dep.name!r}: runtime {dep.runtime!r} does not serve OpenAI's /v1/embeddings; "
                         "remove embeddings: true or pick a runtime that does (embedded, llamacpp, vllm)")
    if dep.max_local_replicas() > 0 and not caps.embedding_launch:
        raise ServeError(f"deployment {dep.name!r}: inferplane cannot start {dep.runtime!r} replicas for embeddings; "
                         "list a server started for embeddings under 'endpoints' (replicas: 0), or use the "
                         "embedded, llamacpp or vllm runtime")


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
    config_path: Path | None = None,
    store: ModelStore | None = None,
    workers: int = 1,
    reuse_port: bool = False,
) -> int:
    """Serve until ``stop`` is set or SIGINT/SIGTERM arrives. Returns the exit code.

    ``config_path``: the deployment file ``config`` came from; with it, SIGHUP and
    ``POST /admin/reload`` re-read it and apply the difference. ``workers`` > 1: this
    process is the primary of that many gateway processes on one port (``workers.py``);
    ``reuse_port``: listen with SO_REUSEPORT (what each of them does).
    """
    gw_cfg = config.gateway
    try:  # traces and the access log: fail at start when configured but impossible
        extra = optional_observers(gw_cfg)
    except ConfigError as exc:
        raise ServeError(str(exc)) from exc
    for line in extra.descriptions:
        say(line)
    try:
        return await _run_server(config, deployments, extra, log_dir=log_dir, say=say, stop=stop,
                                 config_path=config_path, store=store, workers=workers, reuse_port=reuse_port)
    finally:  # after the last request: pending log lines written, buffered spans exported
        await asyncio.to_thread(extra.close)


async def _run_server(
    config: InferplaneConfig,
    deployments: tuple[DeploymentConfig, ...],
    extra: OptionalObservers,
    *,
    log_dir: Path,
    say: Callable[[str], None],
    stop: asyncio.Event | None,
    config_path: Path | None,
    store: ModelStore | None,
    workers: int,
    reuse_port: bool,
) -> int:
    gw_cfg = config.gateway
    access = upstream_access(config.gateway, deployments)
    listener_tls = _listener_tls(config)
    for dep in deployments:
        for t in dep.endpoints:
            if not t.tls_verify:
                say(f"WARNING: {dep.name}: TLS verification is off for {t.url} (tls_verify: false): anyone on the "
                    "path can read and change its traffic")
    follow = config.placement.follow
    findings = await _survey_endpoints(deployments, access)
    backend = LocalBackend(log_dir=log_dir) if follow else await _placement_backend(config, deployments, log_dir, say)
    registry = EndpointRegistry()
    held = HeldQueue(timeout_s=gw_cfg.queue_timeout_s, max_depth=gw_cfg.max_held_requests, ordering=FairOrdering)
    try:
        tenancy = build_tenancy(gw_cfg)
    except (ConfigError, RuntimeError) as exc:
        raise ServeError(str(exc)) from exc
    gateway = Gateway(gw_cfg, deployments, registry, held=held, admission=tenancy.admission,
                      observers=(*tenancy.request_observers, *extra.observers))
    gateway.metrics.registry.register(tenancy.observer)
    gateway.metrics.registry.register(QueueCollector(held))
    gateway.pool.set_access(access)
    checker = HealthChecker(registry, interval_s=gw_cfg.scrape_interval_s, access=access)
    plane = ControlPlane(registry=registry, backend=backend,
                         ready_timeout_s=gw_cfg.ready_timeout_s, cached_blocks=_cached_blocks(gateway),
                         pinned_sessions=gateway.router.sessions.pinned)
    autoscaler = Autoscaler(plane.controllers, SignalReader(registry, held, lambda n: gateway.metrics.model(n).ttft))
    feed = EndpointFeed(registry)
    follower = None
    if follow:  # a follower launches nothing: the primary's replicas are mirrored from its feed
        # the feed is an /admin route: the admin key opens it when there is one, else an API key
        try:
            key = admin_key(gw_cfg) or (gw_cfg.api_keys[0] if gw_cfg.api_keys else None)
        except ConfigError as exc:
            raise ServeError(str(exc)) from exc
        auth = {"Authorization": f"Bearer {key}"} if key else {}
        follower = EndpointFollower(registry, follow, lambda: {s.config.name: s.config
                                                                for s in gateway.served.values()}, headers=auth)
    reload = None
    if config_path is not None and not follow:
        reload = _Reloader(config_path, config, gateway, plane, store or ModelStore(), say, checker)
    gateway.admin = AdminApi(plane, autoscaler=autoscaler, reload=reload, feed=feed,
                             apply_deployment=lambda d: _apply_one(gateway, plane, d),
                             endpoint_access=_EndpointAccess(gw_cfg, gateway, checker, reload)).routes
    gateway.can_serve = plane.can_serve
    gateway.metrics.registry.register(ControlCollector(
        plane.counts, lambda: autoscaler.decisions, held.depths, lambda: held.timeouts_total,
        lambda: held.rejected_total))
    _attach_dashboard(gateway, plane, held, autoscaler, tenancy)
    try:
        site = await http1.serve(gateway.handle, gw_cfg.host, gw_cfg.port, limits=gateway.http_limits(),
                                 on_refused=gateway.refused, ssl=listener_tls, reuse_port=reuse_port or workers > 1)
    except OSError as exc:
        raise ServeError(f"cannot listen on {gw_cfg.host}:{gw_cfg.port}: {exc.strerror or exc}") from exc
    bound = site.sockets[0].getsockname()[:2] if site.sockets else (gw_cfg.host, gw_cfg.port)
    scheme = "https" if listener_tls is not None else "http"
    say(f"gateway listening on {scheme}://{bound[0]}:{bound[1]} (OpenAI API under /v1)")
    private = followers = None
    if workers > 1:  # the followers reach this process (not just any on the shared port) here
        private = await http1.serve(gateway.handle, "127.0.0.1", 0, limits=gateway.http_limits(),
                                    on_refused=gateway.refused)
        followers = FollowerProcesses(config, deployments, count=workers, port=int(bound[1]), log_dir=log_dir,
                                      primary_url=f"http://127.0.0.1:{private.sockets[0].getsockname()[1]}",
                                      say=say)
    if follower is not None:
        say(f"following the control plane of the gateway at {follow}: no replica is launched here")
    for dep in deployments:
        if dep.endpoints:
            say(_endpoints_line(dep, findings.get(dep.name)))

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload.in_background if reload is not None else
                            lambda: say("SIGHUP: not started from a deployment file (--config); nothing to reload"))

    for dep in deployments:
        plane.add(dep.model_copy(update={"replicas": 0, "autoscale": None}) if follow else dep)
        _apply_findings(plane, dep, findings.get(dep.name))
    checker.start()
    if follower is not None:
        follower.start()
    else:
        autoscaler.start()
    if followers is not None:
        await followers.start()

    # Everything built so far lives as long as the server: keep it out of the cyclic GC's
    # generations, and collect young objects less often (the hot path allocates little that
    # forms cycles), which cuts GC pauses from the tail latency.
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    code = 0
    try:
        waiting = asyncio.ensure_future(_announce_ready(plane, deployments, say) if follower is None
                                        else _announce_following(follower, say))
        stopped = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({waiting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if waiting in done and not waiting.result():
            code = 1
        else:
            await stopped
        waiting.cancel()
    finally:
        say("shutting down")
        loop.remove_signal_handler(signal.SIGHUP)
        force = asyncio.Event()  # a second Ctrl-C / SIGTERM skips the drain
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, force.set)
        site.close()  # no new connections; requests in flight (and on open connections) go on
        held.close(None, "the gateway is shutting down")
        await autoscaler.stop()
        if followers is not None:  # they drain their own requests while the replicas still run
            await followers.stop(gw_cfg.drain_timeout_s + 15.0)
        if private is not None:
            private.close()
        await _drain_requests(registry, gw_cfg.drain_timeout_s if code == 0 else 0.0, say, force)
        if follower is not None:
            await follower.stop()
        await plane.shutdown(drain_timeout_s=0.0)
        await checker.stop()
        gateway.close()
        await tenancy.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return code


async def _placement_backend(config: InferplaneConfig, deployments: tuple[DeploymentConfig, ...], log_dir: Path,
                             say: Callable[[str], None]) -> PlacementBackend:
    """The backend ``placement.backend`` names; raises ServeError when it cannot be had (no Ray, no cluster)."""
    if config.placement.backend == "local":
        _gpu_grants(deployments)  # fail fast when the first replicas cannot all get their GPUs
        return LocalBackend(log_dir=log_dir)
    from inferplane.placement.ray_backend import RayBackend

    try:
        backend = await RayBackend.connect(config.placement, log_dir=log_dir)
    except PlacementError as exc:
        raise ServeError(str(exc)) from exc
    nodes = [n for n in backend.ray.nodes() if n.get("Alive")]
    say(f"placement: Ray cluster at {config.placement.address} ({len(nodes)} node(s) alive, "
        f"namespace {config.placement.namespace!r})")
    return backend


def upstream_access(gateway: GatewayConfig, deployments: tuple[DeploymentConfig, ...]) -> AccessTable:
    """The TLS settings and keys of every listed endpoint; ServeError for what cannot be used."""
    try:
        return access_from_config(gateway, deployments)
    except (ValueError, OSError) as exc:
        raise ServeError(str(exc)) from exc


def _listener_tls(config: InferplaneConfig) -> ssl.SSLContext | None:
    tls = config.gateway.tls
    try:
        return None if tls is None else http1.server_tls_context(str(tls.cert_file), str(tls.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ServeError(f"gateway.tls: cannot load the certificate and key: {exc}") from exc


async def _survey_endpoints(deployments: tuple[DeploymentConfig, ...],
                            access: AccessTable) -> dict[str, list[Finding]]:
    """What each listed OpenAI-speaking endpoint serves; refuses to start when one serves
    several models and the deployment chose none (``upstream_model``)."""
    out: dict[str, list[Finding]] = {}
    for dep in deployments:
        if not dep.endpoints or not get_adapter(dep.runtime).dialect_for(dep).passthrough:
            continue
        found = await survey(tuple(t.url for t in dep.endpoints), deployment=dep.name,
                             wanted=dep.upstream_model, timeout_s=_SURVEY_TIMEOUT_S, access=access)
        for f in found:
            if f.match is not None and f.match.ambiguous:
                raise ServeError(f"deployment {dep.name!r}: endpoint {f.url}: {f.match.problem}")
        out[dep.name] = found
    return out


def _apply_findings(plane: ControlPlane, dep: DeploymentConfig, found: list[Finding] | None) -> None:
    """Existing endpoints that answered the survey with the model: its upstream name, ready at once."""
    by_url = {f.url: f for f in found or ()}
    registry = plane.registry
    for ep in registry.endpoints(dep.name):
        f = by_url.get(ep.url) if not ep.managed else None
        if f is not None and f.match is not None and f.match.model:
            ep.upstream_model = f.match.model
            registry.set_ready(ep, True)


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


async def _drain_requests(registry: EndpointRegistry, timeout_s: float, say: Callable[[str], None],
                          force: asyncio.Event) -> None:
    """Wait until no request is in flight on any endpoint, at most ``timeout_s`` (or until ``force``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    busy = sum(e.in_flight for e in registry)
    if busy:
        say(f"waiting up to {timeout_s:.0f} s for {busy} request(s) in flight to finish "
            "(send the signal again to stop at once)")
    while busy and loop.time() < deadline and not force.is_set():
        await asyncio.sleep(0.05)
        busy = sum(e.in_flight for e in registry)
    if busy:
        say(f"drain timeout: {busy} request(s) still in flight are cut")


def _attach_dashboard(gateway: Gateway, plane: ControlPlane, held: HeldQueue, autoscaler: Autoscaler,
                      tenancy: Tenancy) -> Dashboard:
    """``GET /dashboard`` (public: the page holds no data) and its feed ``GET /admin/dashboard.json``
    (an admin route), over the rolling request windows, which observe every request; with
    tenants configured, their last minute against their limits."""
    recent = RecentRequests()
    gateway.observers.add(recent)
    dashboard = Dashboard(registry=gateway.registry, router=gateway.router, recent=recent, plane=plane, held=held,
                          autoscaler=autoscaler)
    if gateway.config.tenants:
        windows = TenantWindows()
        gateway.observers.add(windows)
        limiter = tenancy.limiter
        dashboard.tenants = tenants_provider(lambda: gateway.config.tenants, windows,
                                             (lambda: limiter.in_progress) if limiter is not None else None)
    gateway.route(PAGE_PATH, "GET", dashboard.page, public=True)
    gateway.route(FEED_PATH, "GET", dashboard.feed)
    return dashboard


def _cached_blocks(gateway: Gateway) -> Callable[[str], int]:
    """Blocks the prefix index remembers for an endpoint (its cache's value to routing)."""
    def blocks(endpoint_id: str) -> int:
        ep = gateway.registry.get(endpoint_id)
        policy = gateway.router.policies.get(ep.deployment) if ep is not None else None
        return policy.index.size(endpoint_id) if isinstance(policy, PrefixPolicy) else 0

    return blocks


def _apply_one(gateway: Gateway, plane: ControlPlane, dep: DeploymentConfig) -> None:
    """One deployment changed through the admin API: the gateway and its controller learn it."""
    gateway.set_deployments(tuple(dep if s.config.name == dep.name else s.config for s in gateway.served.values()))
    plane.controllers[dep.name].update(dep, endpoints=False)  # endpoints that joined through the admin API stay


class _EndpointAccess:
    """An endpoint joins through the admin API: its key and TLS settings, checked as the file's
    are, go into the access table every part that talks to endpoints reads (the proxy's pool,
    the health checker, a later reload's comparison)."""

    def __init__(self, gateway_config: GatewayConfig, gateway: Gateway, checker: HealthChecker,
                 reload: _Reloader | None) -> None:
        self.gateway_config = gateway_config
        self.gateway = gateway
        self.checker = checker
        self.reload = reload

    def __call__(self, dep: DeploymentConfig, target: ReplicaTarget) -> UpstreamAccess:
        access = access_for_endpoint(self.gateway_config, dep, target)  # ValueError: the admin API's 400
        table = self.checker.access
        if not isinstance(table, AccessTable):
            table = AccessTable()
        table = table.with_url(target.url, access)
        self.gateway.pool.set_access(table, {target.url})
        self.checker.access = table
        if self.reload is not None:
            self.reload.access = table
        return access


class _Reloader:
    """Re-reads the deployment file and applies the difference (SIGHUP, POST /admin/reload)."""

    def __init__(self, path: Path, config: InferplaneConfig, gateway: Gateway, plane: ControlPlane,
                 store: ModelStore, say: Callable[[str], None], checker: HealthChecker) -> None:
        self.path = path
        self.checker = checker
        self.access = checker.access
        self.raw = {d.name: d for d in config.deployments}
        self.gateway_config = config.gateway
        self.gateway = gateway
        self.plane = plane
        self.store = store
        self.say = say
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Future[Any]] = set()

    def in_background(self) -> None:
        task = asyncio.ensure_future(self._logged())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _logged(self) -> None:
        try:
            report = await self()
        except ConfigError as exc:
            self.say(f"reload failed, nothing changed: {exc}")
            return
        self.say(f"reloaded {self.path}: {report}")

    async def __call__(self) -> dict[str, Any]:
        async with self._lock:
            config = load_config(self.path)
            prepared, fresh = [], []
            for d in config.deployments:
                old = self.raw.get(d.name)
                ctl = self.plane.controllers.get(d.name)
                if old is not None and ctl is not None and same_launch(old, d):
                    prepared.append(ctl.deployment.model_copy(update={k: getattr(d, k) for k in NON_LAUNCH_FIELDS}))
                else:
                    prepared.append(d)
                    fresh.append(d)
            if fresh:
                sub = config.model_copy(update={"deployments": tuple(fresh)})
                try:
                    ready = await asyncio.to_thread(prepare_deployments, sub, self.store, self.say)
                except ServeError as exc:
                    raise ConfigError(str(exc)) from exc
                by_name = {d.name: d for d in ready}
                prepared = [by_name.get(d.name, d) for d in prepared]
            deployments = tuple(prepared)
            try:
                access = upstream_access(config.gateway, deployments)
            except ServeError as exc:
                raise ConfigError(str(exc)) from exc
            self.gateway.pool.set_access(access, access.changed(self.access)
                                         if isinstance(self.access, AccessTable) else None)
            self.checker.access = self.access = access
            self.gateway.set_deployments(deployments)
            report = self.plane.apply(deployments)
            self.raw = {d.name: d for d in config.deployments}
            if report.removals:
                removed = list(report.removed)
                done = asyncio.ensure_future(asyncio.gather(*report.removals, return_exceptions=True))
                done.add_done_callback(lambda _f: self.gateway.forget(removed))
                self._tasks.add(done)
                done.add_done_callback(self._tasks.discard)
            out: dict[str, Any] = report.as_dict()
            if config.gateway != self.gateway_config:
                out["restart_needed"] = "gateway settings changed; they apply after a restart"
            return out


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


async def _announce_following(follower: EndpointFollower, say: Callable[[str], None]) -> bool:
    await follower.synced.wait()
    n = sum(1 for e in follower.registry if e.managed)
    say(f"following {follower.primary_url}: {n} replica(s) of its control plane known")
    return True


async def _announce_ready(plane: ControlPlane, deployments: tuple[DeploymentConfig, ...],
                          say: Callable[[str], None]) -> bool:
    """Report each first replica's readiness; False if some deployment got no replica up."""
    handles = [(name, h) for name, ctl in plane.controllers.items() for h in ctl.initial]
    results = await asyncio.gather(*(h.wait_ready() for _, h in handles), return_exceptions=True)
    up: dict[str, int] = {}
    for (name, _h), res in zip(handles, results, strict=True):
        if not isinstance(res, BaseException):  # a failure was logged, with its reason, where it happened
            up[name] = up.get(name, 0) + 1
    on_demand = {d.name for d in deployments if d.autoscale is not None and d.autoscale.min_replicas == 0}
    failed = [d.name for d in deployments
              if d.replicas and not up.get(d.name) and not d.endpoints and d.name not in on_demand]
    if failed:
        say(f"no replica of {', '.join(failed)} could start (the reason is above); stopping")
        return False
    where = "local" if plane.backend.name == "local" else f"{plane.backend.name}-placed"
    for d in deployments:
        if d.replicas == 0 and d.autoscale is not None:
            say(f"model {d.name!r} scaled to zero: a replica starts on the first request ({d.runtime}, {d.model})")
        elif d.replicas:
            say(f"model {d.name!r} ready: {up.get(d.name, 0)}/{d.replicas} {where} replica(s) "
                f"({d.runtime}, {d.model})")
    return True
