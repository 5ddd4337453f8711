"""Facts about the target and the client host, recorded in every report."""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass, field

import aiohttp
import orjson

__all__ = ["ClientHost", "TargetInfo", "client_host", "discover_target", "gateway_runtimes"]


@dataclass(frozen=True, slots=True)
class TargetInfo:
    """What the endpoint says about itself (best effort; ``None`` when not discoverable)."""

    url: str
    served_models: tuple[str, ...] = ()
    server_header: str | None = None
    runtime: str | None = None
    runtime_version: str | None = None
    via_gateway: bool | None = None
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClientHost:
    """The machine that ran the client."""

    hostname: str
    platform: str
    python: str
    cpu_count: int
    cpu_model: str
    inferplane_version: str
    started_at_utc: str = field(
        default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def client_host() -> ClientHost:
    """Describe this host."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("inferplane")
    except PackageNotFoundError:  # a source checkout, not an installed distribution
        ver = "source"
    return ClientHost(
        platform.node(),
        platform.platform(),
        sys.version.split()[0],
        os.cpu_count() or 0,
        _cpu_model(),
        ver,
    )


async def discover_target(
    base_url: str, timeout_s: float = 5.0, api_key: str | None = None
) -> TargetInfo:
    """Ask ``/v1/models`` and ``/version`` who is serving; never raises."""
    base = base_url.rstrip("/").removesuffix("/v1")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    models: tuple[str, ...] = ()
    server = runtime = version = None
    gateway: bool | None = None
    errors: list[str] = []
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout_s), headers=headers
    ) as http:
        try:
            async with http.get(base + "/v1/models") as resp:
                server = resp.headers.get("Server")
                gateway = any(k.lower().startswith("x-inferplane") for k in resp.headers) or None
                data = orjson.loads(await resp.read())
                entries = data.get("data", []) if isinstance(data, dict) else []
                models = tuple(str(e.get("id")) for e in entries if isinstance(e, dict))
                owners = {
                    str(e.get("owned_by"))
                    for e in entries
                    if isinstance(e, dict) and e.get("owned_by")
                }
                runtime = ",".join(sorted(owners)) or None
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, ValueError) as exc:
            errors.append(f"/v1/models: {exc!r}")
        try:
            async with http.get(base + "/version") as resp:
                if resp.status == 200:
                    data = orjson.loads(await resp.read())
                    if isinstance(data, dict):
                        version = (
                            str(data.get("version")) if data.get("version") is not None else None
                        )
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, ValueError):
            pass  # /version is optional (vLLM has it, most others do not)
    if any("inferplane" in (v or "").lower() for v in (server, runtime)):
        gateway = True  # the gateway names itself as the models' owner
    return TargetInfo(base_url, models, server, runtime, version, gateway, tuple(errors))


async def gateway_runtimes(
    base_url: str, model: str, *, api_key: str | None = None, timeout_s: float = 5.0
) -> str | None:
    """The runtimes of an inferplane gateway's replicas that serve ``model`` (its ``/admin/endpoints``),
    e.g. ``"embedded"``; None when the gateway does not say."""
    base = base_url.rstrip("/").removesuffix("/v1")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout_s), headers=headers
        ) as http, http.get(base + "/admin/endpoints") as resp:
            if resp.status != 200:
                return None
            data = orjson.loads(await resp.read())
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, OSError):
        return None
    eps = data.get("endpoints", []) if isinstance(data, dict) else []
    runtimes = {
        str(e.get("runtime"))
        for e in eps
        if isinstance(e, dict) and e.get("deployment") == model and e.get("runtime")
    }
    return ",".join(sorted(runtimes)) or None
