"""Running a readiness probe against a replica."""

from __future__ import annotations

import ssl

import aiohttp

from inferplane.runtimes.access import PLAIN, UpstreamAccess, describe_tls_error
from inferplane.runtimes.base import ProbeSpec

__all__ = ["aiohttp_ssl", "io_problem", "probe_once", "probe_problem"]


def aiohttp_ssl(access: UpstreamAccess) -> ssl.SSLContext | bool:
    """aiohttp's ``ssl=`` for ``access``: its context, or True (the system's CAs, verified)."""
    return access.ssl_context if access.ssl_context is not None else True


def io_problem(exc: BaseException, timeout_s: float) -> str:
    """Why a request to an endpoint failed, in words (TLS failures say what to set)."""
    tls = describe_tls_error(exc)
    if tls is not None:
        return tls
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port}: {exc.os_error.strerror or exc.os_error}"
    return str(exc) or type(exc).__name__


async def probe_problem(session: aiohttp.ClientSession, base_url: str, probe: ProbeSpec, timeout_s: float, *,
                        access: UpstreamAccess = PLAIN) -> str | None:
    """None when the probe request answers 2xx within ``timeout_s``, else why not, in words;
    never raises for I/O trouble."""
    headers = access.headers()
    if probe.body:
        headers["content-type"] = "application/json"
    try:
        async with session.request(probe.method, base_url + probe.path, data=probe.body, headers=headers or None,
                                   ssl=aiohttp_ssl(access),
                                   timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            await resp.read()
            if 200 <= resp.status < 300:
                return None
            return f"{probe.method} {probe.path} answered {resp.status}"
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return io_problem(exc, timeout_s)


async def probe_once(session: aiohttp.ClientSession, base_url: str, probe: ProbeSpec, timeout_s: float, *,
                     access: UpstreamAccess = PLAIN) -> bool:
    """True when the probe request answers 2xx within ``timeout_s``; never raises for I/O trouble."""
    return await probe_problem(session, base_url, probe, timeout_s, access=access) is None
