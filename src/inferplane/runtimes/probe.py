"""Running a readiness probe against a replica."""

from __future__ import annotations

import aiohttp

from inferplane.runtimes.base import ProbeSpec

__all__ = ["probe_once"]


async def probe_once(session: aiohttp.ClientSession, base_url: str, probe: ProbeSpec, timeout_s: float) -> bool:
    """True when the probe request answers 2xx within ``timeout_s``; never raises for I/O trouble."""
    try:
        async with session.request(
            probe.method,
            base_url + probe.path,
            data=probe.body,
            headers={"content-type": "application/json"} if probe.body else None,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            await resp.read()
            return 200 <= resp.status < 300
    except (TimeoutError, aiohttp.ClientError, OSError):
        return False
